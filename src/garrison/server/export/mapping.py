"""Catalogue events in ESET PROTECT's export shapes.

Every exporter format starts from the record built here: the common keys (``event_type``,
``ipv4``/``ipv6``, ``hostname``, ``source_uuid``, ``occured``, ``severity``) and the keys of
the ESET type the event maps to, with the seed's types (bool as bool, numbers as numbers).
An event with no ESET equivalent keeps Garrison's own type name and its catalogue fields.

``occured`` is spelled with one r on purpose: real ESET exports and the parsers built for
them (Elastic, Sekoia, Datadog…) read that key, though ESET's documentation writes
``occurred``.  The ``eset`` profile then gives each record ESET's own keys and vocabulary
(:mod:`garrison.server.export.eset`).
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from garrison.common.catalogue import CATALOGUE, parse_timestamp
from garrison.common.catalogue_eset import AGG, ESET_EVENTS
from garrison.common.catalogue_types import EventType
from garrison.common.vocabulary import Severity, is_severity
from garrison.server.export import eset

TIME_KEY = "occured"
AGGREGATE_COUNT = AGG.name
ESET_TIME = "%d-%b-%Y %H:%M:%S"


@dataclass(frozen=True)
class StationInfo:
    uuid: str = ""
    hostname: str = ""
    address: str = ""
    os_name: str = ""
    group: str = ""  # the station's (first) group, "" for none
    group_description: str = ""


@dataclass(frozen=True)
class Record:
    """One event, ready for any format: ordered keys, typed values."""

    event_type: str  # ESET type, or Garrison's own type name
    garrison_type: str
    severity: str
    time: dt.datetime
    fields: dict[str, Any]  # common keys first, then the type's own
    profile: str = "garrison"
    # Garrison's own type (no ESET equivalent): the eset profile sends it only when asked,
    # under Garrison's identity.
    own: bool = False


def eset_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime(ESET_TIME)


@functools.lru_cache(maxsize=4096)
def _address(candidate: str) -> tuple[str | None, str | None] | None:
    """(ipv4, ipv6) of an address, None when it is not one.  Cached: a batch's events come
    from a few stations, each naming the same address."""
    try:
        ip = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    return (str(ip), None) if ip.version == 4 else (None, str(ip))


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
        found = _address(str(candidate))
        if found is not None:
            return found
    return None, None


def eset_type_of(event_type: str) -> str | None:
    """The ESET type an event of ``event_type`` is exported as, or None (Garrison's own)."""
    declared = CATALOGUE.get(event_type)
    return declared.eset_type if declared is not None and event_type in MAPPERS else None


def build(
    event_type: str,
    severity: int,
    time: dt.datetime,
    data: dict[str, Any],
    station: StationInfo,
    profile: str = "garrison",
    inspect_name: str = eset.INSPECT_TYPE,
    server: eset.ServerIdentity | None = None,
) -> Record:
    eset_type = eset_type_of(event_type)
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
    # A type's own key left empty (a BlockedFiles_Event's hostname…) does not hide the
    # common key of the same name.
    fields = {**common, **{k: v for k, v in own.items() if v is not None}}
    fields = {k: v for k, v in fields.items() if v is not None}
    if profile == "eset" and eset_type:
        return _eset_record(
            event_type, eset_type, time, data, station, fields, inspect_name, server
        )
    # Garrison's own types keep Garrison's identity in either profile.
    return Record(
        eset_type or event_type,
        event_type,
        severity_name,
        time,
        fields,
        profile if eset_type else "garrison",
        not eset_type,
    )


def _eset_record(
    event_type: str,
    eset_type: str,
    time: dt.datetime,
    data: dict[str, Any],
    station: StationInfo,
    fields: dict[str, Any],
    inspect_name: str,
    server: eset.ServerIdentity | None,
) -> Record:
    """``fields`` (Garrison's record of an ESET type) as ESET PROTECT writes that type."""
    fields.setdefault("hostname", "")  # ESET always names the computer
    fields["group_name"] = eset.group_path(station.group)
    fields["group_description"] = station.group_description
    fields["os_name"] = station.os_name
    if "hash" in fields:
        fields["hash"] = str(fields["hash"]).upper()
    if fields.get("object_type") == "file":
        fields["object_type"] = "File"
    if eset_type == "FirewallAggregated_Event":
        action = eset.firewall_action(data)
        fields["action"] = action
        fields["handled"] = action == "Blocked"
    elif eset_type == "HipsAggregated_Event":
        fields["handled"] = eset.hips_handled(fields.get("action"))
    elif eset_type == "EnterpriseInspectorAlert_Event":
        score = str(eset.SEVERITY_SCORE[fields["severity"]])
        fields["computer_severity_score"] = str(data.get("computer_severity_score") or score)
        fields["severity_score"] = str(data.get("severity_score") or score)
        fields["event_type"] = eset_type = inspect_name
    elif eset_type == "Audit_Event":
        identity = server or eset.local_server()
        fields.update(eset.audit(data))
        fields["severity"] = Severity.INFORMATION.value
        fields["hostname"] = identity.hostname
        fields["source_uuid"] = identity.uuid
        fields.pop("ipv6", None)
        if identity.ipv4:
            fields["ipv4"] = identity.ipv4
        else:
            fields.pop("ipv4", None)
        fields["group_name"], fields["group_description"] = eset.ALL_GROUP, ""
    ordered = {k: fields[k] for k in eset.COMMON_ORDER if k in fields}
    ordered.update((k, v) for k, v in fields.items() if k not in ordered)
    return Record(eset_type, event_type, ordered["severity"], time, ordered, "eset")


# Keys that identify "exact same" events for aggregation, in the types that aggregate: all
# their keys but the count.
AGGREGATE_KEYS: dict[str, tuple[str, ...]] = {
    name: tuple(k for k in keys if k != AGGREGATE_COUNT)
    for name, keys in ESET_KEYS.items()
    if AGGREGATE_COUNT in keys
}
