"""Turning a record into the bytes a target receives: its format, the syslog envelope and
framing of syslog transports, and the message size bound; and building a target's records
in its profile (``eset``: ESET PROTECT's identity, ``garrison``: Garrison's own)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from garrison.server.export import eset, formats, syslog
from garrison.server.export.config import profile_of
from garrison.server.export.mapping import Record, StationInfo, build
from garrison.server.export.target import SYSLOG_TRANSPORTS, Target
from garrison.server.store.base import utcnow

# Transports that carry one message per unit (no newline or octet framing of their own).
UNFRAMED = ("udp", "relp")
Encoder = Callable[[Record], bytes]
# In the eset profile, Garrison's own types (sent only when the target asks) carry their
# type under this key, not ``event_type``: the parsers that select on ``event_type``
# (Sekoia, Datadog) leave them alone.
OWN_TYPE_KEY = "garrison_event_type"


def record_for(
    target: Target,
    event_type: str,
    severity: int,
    time: dt.datetime,
    data: dict[str, Any],
    station: StationInfo,
) -> Record:
    """One event as ``target``'s profile exports it."""
    o = target.options
    return build(
        event_type,
        severity,
        time,
        data,
        station,
        profile=profile_of(target.format, o),
        inspect_name=o.inspect_alert_name,
        server=eset.local_server(),
    )


def sends(target: Target, record: Record) -> bool:
    """Whether ``target`` sends ``record``: in the eset profile, Garrison's own types only
    when the target asks for them (``garrison_events``)."""
    if not record.own or profile_of(target.format, target.options) != "eset":
        return True
    return target.options.garrison_events


def _garrison_formatter(target: Target) -> Callable[[Record], str]:
    if target.format == "leef2":
        return functools.partial(formats.leef2, delimiter=target.options.leef_delimiter)
    return formats.FORMATS[target.format]


def encoder(target: Target) -> Encoder:
    o = target.options
    garrison = _garrison_formatter(target)
    eset_formatter = formats.ESET_FORMATS.get(target.format)
    in_eset_profile = profile_of(target.format, o) == "eset"

    def wrap(record: Record) -> bytes:
        if record.profile == "eset" and eset_formatter is not None:
            payload = eset_formatter(record)
            identity: dict[str, Any] = {
                "app_name": syslog.ESET_APP_NAME,
                "procid": eset.pid(),
                "msgid": "-",
            }
        else:
            if in_eset_profile and target.format == "eset-json":
                fields = {
                    (OWN_TYPE_KEY if k == "event_type" else k): v for k, v in record.fields.items()
                }
                record = dataclasses.replace(record, fields=fields)
            payload = garrison(record)
            identity = {"msgid": record.event_type}
        if target.transport not in SYSLOG_TRANSPORTS:
            return payload.encode("utf-8")
        return syslog.envelope(
            payload,
            severity=record.severity,
            time=record.time,
            kind=o.envelope,
            bom=o.bom,
            max_bytes=1 << 30,
            **identity,
        )

    def encode(record: Record) -> bytes:
        message = wrap(record)
        # Too long: shorten the longest text fields rather than cut the record, so the
        # message stays one parseable record of at most max_message_bytes.
        for _ in range(12):
            if len(message) <= o.max_message_bytes:
                break
            texts = [(len(v), k) for k, v in record.fields.items() if isinstance(v, str)]
            if not texts:
                break
            size, longest = max(texts)
            excess = len(message) - o.max_message_bytes
            keep = max(min(size - excess - 16, size // 2), 0)
            fields = {**record.fields, longest: record.fields[longest][:keep] + "…"}
            record = dataclasses.replace(record, fields=fields)
            message = wrap(record)
        if target.transport not in SYSLOG_TRANSPORTS:
            return message
        if len(message) > o.max_message_bytes:
            message = message[: o.max_message_bytes]
        return syslog.frame(message, "none" if target.transport in UNFRAMED else o.framing)

    return encode


def heartbeat_record() -> Record:
    now = utcnow()
    return Record(
        "HEARTBEAT",
        "HEARTBEAT",
        "Information",
        now,
        {
            "event_type": "HEARTBEAT",
            "hostname": syslog.HOSTNAME,
            "occured": now.strftime("%d-%b-%Y %H:%M:%S"),
            "severity": "Information",
        },
    )


def heartbeat(target: Target) -> bytes:
    """The idle heartbeat.  The eset profile sends ESET's over syslog: a plain ``HEARTBEAT``
    from ``ERAServer[pid]`` at local7.info (``<190>``), which Elastic's pipeline recognises;
    otherwise a ``HEARTBEAT`` record in the target's format."""
    o = target.options
    if profile_of(target.format, o) != "eset" or target.transport not in SYSLOG_TRANSPORTS:
        return encoder(target)(heartbeat_record())
    message = syslog.envelope(
        "HEARTBEAT",
        severity="Information",
        time=utcnow(),
        kind=o.envelope,
        facility=syslog.FACILITY_LOCAL7,
        app_name=syslog.ESET_APP_NAME,
        procid=eset.pid(),
    )
    return syslog.frame(message, "none" if target.transport in UNFRAMED else o.framing)
