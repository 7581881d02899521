"""Turning a record into the bytes a target receives: its format, the syslog envelope and
framing of syslog transports, and the message size bound."""

from __future__ import annotations

import functools
from collections.abc import Callable

from garrison.server.export import formats, syslog
from garrison.server.export.mapping import Record
from garrison.server.export.target import SYSLOG_TRANSPORTS, Target
from garrison.server.store.base import utcnow

# Transports that carry one message per unit (no newline or octet framing of their own).
UNFRAMED = ("udp", "relp")
Encoder = Callable[[Record], bytes]


def encoder(target: Target) -> Encoder:
    o = target.options
    formatter: Callable[[Record], str] = formats.FORMATS[target.format]
    if target.format == "leef2":
        formatter = functools.partial(formats.leef2, delimiter=o.leef_delimiter)

    def wrap(record: Record) -> bytes:
        payload = formatter(record)
        if target.transport not in SYSLOG_TRANSPORTS:
            return payload.encode("utf-8")
        return syslog.envelope(
            payload,
            severity=record.severity,
            time=record.time,
            kind=o.envelope,
            msgid=record.event_type,
            bom=o.bom,
            max_bytes=1 << 30,
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
            record = Record(
                record.event_type, record.garrison_type, record.severity, record.time, fields
            )
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
