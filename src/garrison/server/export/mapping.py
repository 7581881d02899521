"""Catalogue events in ESET PROTECT's export shapes.

Every exporter format starts from the record built here: the common keys (``event_type``,
``ipv4``/``ipv6``, ``hostname``, ``source_uuid``, ``occured``, ``severity``) and the keys of
the ESET type the event maps to, with the seed's types (bool as bool, numbers as numbers).
An event with no ESET equivalent keeps Garrison's own type name and its catalogue fields.

``occured`` is spelled with one r on purpose: real ESET exports and the parsers built for
them (Elastic, Sentinel, Wazuh…) read that key, though ESET's documentation writes
``occurred``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from garrison.common.catalogue import CATALOGUE, parse_timestamp
from garrison.common.catalogue_eset import AGG, ESET_EVENTS
from garrison.common.catalogue_types import EventType
from garrison.common.vocabulary import Severity, is_severity

TIME_KEY = "occured"
AGGREGATE_COUNT = AGG.name
ESET_TIME = "%d-%b-%Y %H:%M:%S"


@dataclass(frozen=True)
class StationInfo:
    uuid: str = ""
    hostname: str = ""
    address: str = ""


@dataclass(frozen=True)
class Record:
    """One event, ready for any format: ordered keys, typed values."""

    event_type: str  # ESET type, or Garrison's own type name
    garrison_type: str
    severity: str
    time: dt.datetime
    fields: dict[str, Any]  # common keys first, then the type's own


def eset_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime(ESET_TIME)


def _file_uri(path: Any) -> str | None:
    if not path:
        return None
    text = str(path)
    return text if "://" in text else "file://" + text


def _threat_from_drweb(d: dict[str, Any]) -> dict[str, Any]:
    handled = str(d.get("action", "")).lower() in (
        "quarantine",
        "quarantined",
        "delete",
        "deleted",
        "cure",
        "cured",
        "blocked",
    )
    return {
        "threat_type": d.get("infectiontype") or "virus",
        "threat_name": d.get("virus"),
        "object_type": "file" if d.get("objecttype", 0) == 0 else str(d.get("objecttype")),
        "object_uri": _file_uri(d.get("object")),
        "action_taken": d.get("action"),
        "threat_handled": handled,
        "need_restart": False,
        "username": d.get("user"),
        "hash": d.get("sha1"),
        "scanner_id": "garrison",
        "circumstances": f"detected on {d.get('station') or 'the station'}",
        "firstseen": d.get("time"),
    }


def _threat_from_detection(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "threat_type": d.get("scan_result") or "detection",
        "threat_name": d.get("category") or d.get("object_name"),
        "object_type": "file",
        "object_uri": _file_uri(d.get("object_name")),
        "action_taken": d.get("processing_mode"),
        "action_error": d.get("error_reason"),
        "threat_handled": not d.get("error_reason"),
        "need_restart": False,
        "username": d.get("user"),
        "processname": d.get("command_line"),
        "scan_id": d.get("record_id"),
        "firstseen": d.get("time"),
    }


def _hips_from_drweb(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "application": d.get("path"),
        "operation": f"hips type {d.get('hips_type', '')}".strip(),
        "target": d.get("target_path"),
        "action": "blocked" if d.get("denied") else "allowed",
        "rule_id": str(d["shell_guard_type"]) if d.get("shell_guard_type") is not None else None,
        "aggregate_count": d.get("event_count") or 1,
    }


def _blocked_from_telemetry(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "hostname": d.get("host"),
        "processname": d.get("file_name"),
        "username": d.get("user"),
        "resolved": True,
        "object_uri": _file_uri(d.get("full_name") or d.get("file_path")),
        "action": "blocked",
        "cause": d.get("command_line"),
        "description": f"{d.get('file_name') or 'file'} blocked",
    }


def _identity(keys: tuple[str, ...]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def pick(d: dict[str, Any]) -> dict[str, Any]:
        return {k: d.get(k) for k in keys}

    return pick


def _shape_keys(shape: EventType) -> tuple[str, ...]:
    """The ESET type's own keys: its catalogue fields but the two the common keys carry (the
    time, as ``occured``, and a HIPS event's own severity, as ``severity``)."""
    return tuple(f.name for f in shape.fields if f.name not in (shape.time_field, "severity"))


# The ESET PROTECT types, each declared once in the catalogue (catalogue_eset): type -> keys.
_SHAPES: dict[str, EventType] = {e.eset_type: e for e in ESET_EVENTS if e.eset_type}
ESET_KEYS: dict[str, tuple[str, ...]] = {name: _shape_keys(e) for name, e in _SHAPES.items()}
# Date-time values inside the types' keys (``firstseen``) use the ESET format too.
DATE_KEYS: tuple[str, ...] = tuple(
    dict.fromkeys(
        f.name
        for e in _SHAPES.values()
        for f in e.fields
        if f.type == "timestamp" and f.name != e.time_field
    )
)
# Per Garrison type, how its data becomes the ESET type's keys.
# The ESET-shaped seed events pass their keys through; the others are converted.
MAPPERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    **{e.name: _identity(ESET_KEYS[eset]) for eset, e in _SHAPES.items()},
    "threat_detected": _threat_from_drweb,
    "detection": _threat_from_detection,
    "preventive_protection_report": _hips_from_drweb,
    "process_start_blocked": _blocked_from_telemetry,
    "file_open_blocked": _blocked_from_telemetry,
}


def _addresses(station: StationInfo, data: dict[str, Any]) -> tuple[str | None, str | None]:
    for candidate in (data.get("ip"), data.get("address"), station.address):
        if not candidate:
            continue
        try:
            ip = ipaddress.ip_address(str(candidate))
        except ValueError:
            continue
        return (str(ip), None) if ip.version == 4 else (None, str(ip))
    return None, None


def build(
    event_type: str, severity: int, time: dt.datetime, data: dict[str, Any], station: StationInfo
) -> Record:
    declared = CATALOGUE[event_type]
    eset_type = declared.eset_type if event_type in MAPPERS else None
    ipv4, ipv6 = _addresses(station, data)
    hostname = station.hostname or data.get("host") or data.get("hostname") or data.get("station")
    severity_name: str = Severity.of_rank(severity).value
    own_severity = data.get("severity")
    if event_type == "hips_event" and is_severity(own_severity):
        severity_name = own_severity
    common: dict[str, Any] = {
        "event_type": eset_type or event_type,
        "ipv4": ipv4,
        "ipv6": ipv6,
        "hostname": hostname,
        "source_uuid": station.uuid or None,
        TIME_KEY: eset_time(time),
        "severity": severity_name,
    }
    own = MAPPERS[event_type](data) if eset_type else dict(data)
    for key in DATE_KEYS:
        if eset_type and own.get(key):
            own[key] = eset_time(parse_timestamp(own[key], key))
    fields = {k: v for k, v in {**common, **own}.items() if v is not None}
    return Record(eset_type or event_type, event_type, severity_name, time, fields)


# Keys that identify "exact same" events for aggregation, in the types that aggregate: all
# their keys but the count.
AGGREGATE_KEYS: dict[str, tuple[str, ...]] = {
    name: tuple(k for k in keys if k != AGGREGATE_COUNT)
    for name, keys in ESET_KEYS.items()
    if AGGREGATE_COUNT in keys
}
