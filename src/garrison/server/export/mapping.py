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
from garrison.common.catalogue_types import SEVERITIES

TIME_KEY = "occured"
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


ESET_KEYS = {
    "Threat_Event": (
        "threat_type",
        "threat_name",
        "threat_flags",
        "scanner_id",
        "scan_id",
        "engine_version",
        "object_type",
        "object_uri",
        "action_taken",
        "action_error",
        "threat_handled",
        "need_restart",
        "username",
        "processname",
        "circumstances",
        "hash",
        "firstseen",
    ),
    "FirewallAggregated_Event": (
        "event",
        "source_address",
        "source_address_type",
        "source_port",
        "target_address",
        "target_address_type",
        "target_port",
        "protocol",
        "account",
        "process_name",
        "rule_name",
        "rule_id",
        "inbound",
        "threat_name",
        "aggregate_count",
    ),
    "HipsAggregated_Event": (
        "application",
        "operation",
        "target",
        "action",
        "rule_name",
        "rule_id",
        "aggregate_count",
    ),
    "Audit_Event": ("domain", "action", "target", "detail", "user", "result"),
    "FilteredWebsites_Event": (
        "hostname",
        "processname",
        "username",
        "resolved",
        "hash",
        "event",
        "rule_id",
        "action_taken",
        "scanner_id",
        "object_uri",
        "target_address",
        "target_address_type",
    ),
    "EnterpriseInspectorAlert_Event": (
        "processname",
        "username",
        "rulename",
        "count",
        "hash",
        "eiconsolelink",
        "eialarmid",
    ),
    "BlockedFiles_Event": (
        "hostname",
        "processname",
        "username",
        "resolved",
        "hash",
        "object_uri",
        "action",
        "firstseen",
        "cause",
        "description",
    ),
}
# Per Garrison type, how its data becomes the ESET type's keys.
MAPPERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "threat_detected": _threat_from_drweb,
    "detection": _threat_from_detection,
    "threat": _identity(ESET_KEYS["Threat_Event"]),
    "firewall_event": _identity(ESET_KEYS["FirewallAggregated_Event"]),
    "hips_event": _identity(ESET_KEYS["HipsAggregated_Event"]),
    "preventive_protection_report": _hips_from_drweb,
    "audit": _identity(ESET_KEYS["Audit_Event"]),
    "website_filtered": _identity(ESET_KEYS["FilteredWebsites_Event"]),
    "edr_alarm": _identity(ESET_KEYS["EnterpriseInspectorAlert_Event"]),
    "file_blocked": _identity(ESET_KEYS["BlockedFiles_Event"]),
    "process_start_blocked": _blocked_from_telemetry,
    "file_open_blocked": _blocked_from_telemetry,
}
# Date-time values inside the type's keys use the ESET format too.
DATE_KEYS = ("firstseen",)


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
    severity_name = SEVERITIES[severity]
    if event_type == "hips_event" and data.get("severity") in SEVERITIES:
        severity_name = data["severity"]
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


# Keys that identify "exact same" firewall / HIPS events for aggregation.
AGGREGATE_KEYS = {
    "FirewallAggregated_Event": ESET_KEYS["FirewallAggregated_Event"][:-1],
    "HipsAggregated_Event": ESET_KEYS["HipsAggregated_Event"][:-1],
}
