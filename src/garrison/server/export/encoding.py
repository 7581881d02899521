"""Turning a record into the bytes a target receives: its format, the syslog envelope and
framing of syslog transports, and the message size bound; and building a target's records
in its profile (``eset``: ESET PROTECT's identity, ``garrison``: Garrison's own)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Sequence
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


class TargetEncoder:
    """A target's records and messages, with everything that depends only on the target
    (its profile, its formatter, the syslog envelope and framing, the size bound) settled
    once, when the target's consumer is made: a batch then pays only for its events."""

    def __init__(self, target: Target) -> None:
        o = target.options
        self.target = target
        self.profile = profile_of(target.format, o)
        self.inspect_name = o.inspect_alert_name
        self.server = eset.local_server()
        self.garrison = _garrison_formatter(target)
        self.eset_formatter = formats.ESET_FORMATS.get(target.format)
        # Garrison's own types under the eset profile, as eset-json: their type renamed.
        self.rename_type = self.profile == "eset" and target.format == "eset-json"
        self.sends_own = self.profile != "eset" or o.garrison_events
        self.syslog = target.transport in SYSLOG_TRANSPORTS
        self.framing = "none" if target.transport in UNFRAMED else o.framing
        self.max_bytes = o.max_message_bytes
        self.envelope_kind = o.envelope
        self.bom = o.bom

    def record(
        self,
        event_type: str,
        severity: int,
        time: dt.datetime,
        data: dict[str, Any],
        station: StationInfo,
    ) -> Record:
        """One event as the target's profile exports it."""
        return build(
            event_type,
            severity,
            time,
            data,
            station,
            profile=self.profile,
            inspect_name=self.inspect_name,
            server=self.server,
        )

    def sends(self, record: Record) -> bool:
        """Whether the target sends ``record``: in the eset profile, Garrison's own types
        only when the target asks for them (``garrison_events``)."""
        return not record.own or self.sends_own

    def _wrap(self, record: Record) -> bytes:
        if record.profile == "eset" and self.eset_formatter is not None:
            payload = self.eset_formatter(record)
            # The pid asked each time: the process that sends may not be the one that made
            # the encoder (a server started with several worker processes).
            identity: dict[str, Any] = {
                "app_name": syslog.ESET_APP_NAME,
                "procid": eset.pid(),
                "msgid": "-",
            }
        else:
            if self.rename_type:
                fields = {
                    (OWN_TYPE_KEY if k == "event_type" else k): v for k, v in record.fields.items()
                }
                record = dataclasses.replace(record, fields=fields)
            payload = self.garrison(record)
            identity = {"msgid": record.event_type}
        if not self.syslog:
            return payload.encode("utf-8")
        return syslog.envelope(
            payload,
            severity=record.severity,
            time=record.time,
            kind=self.envelope_kind,
            bom=self.bom,
            max_bytes=1 << 30,
            **identity,
        )

    def encode(self, record: Record) -> bytes:
        message = self._wrap(record)
        # Too long: shorten the longest text fields rather than cut the record, so the
        # message stays one parseable record of at most max_message_bytes.
        for _ in range(12):
            if len(message) <= self.max_bytes:
                break
            texts = [(len(v), k) for k, v in record.fields.items() if isinstance(v, str)]
            if not texts:
                break
            size, longest = max(texts)
            excess = len(message) - self.max_bytes
            keep = max(min(size - excess - 16, size // 2), 0)
            fields = {**record.fields, longest: record.fields[longest][:keep] + "…"}
            record = dataclasses.replace(record, fields=fields)
            message = self._wrap(record)
        if not self.syslog:
            return message
        if len(message) > self.max_bytes:
            message = message[: self.max_bytes]
        return syslog.frame(message, self.framing)

    def encode_batch(self, records: Sequence[Record]) -> list[bytes]:
        """A batch's messages, in order."""
        encode = self.encode
        return [encode(record) for record in records]


def record_for(
    target: Target,
    event_type: str,
    severity: int,
    time: dt.datetime,
    data: dict[str, Any],
    station: StationInfo,
) -> Record:
    """One event as ``target``'s profile exports it."""
    return TargetEncoder(target).record(event_type, severity, time, data, station)


def sends(target: Target, record: Record) -> bool:
    """Whether ``target`` sends ``record`` (see :meth:`TargetEncoder.sends`)."""
    return TargetEncoder(target).sends(record)


def _garrison_formatter(target: Target) -> Callable[[Record], str]:
    if target.format == "leef2":
        return functools.partial(formats.leef2, delimiter=target.options.leef_delimiter)
    return formats.FORMATS[target.format]


def encoder(target: Target) -> Encoder:
    """``target``'s encoder of one record (see :class:`TargetEncoder`)."""
    return TargetEncoder(target).encode


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
