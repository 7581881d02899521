"""The event catalogue: every event type Garrison knows, declared once.

Validation (here), Lua procedure arguments, search, exporters and the generated
``docs/events.md`` are all driven from it.  The declarations live in one module per seed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Any

from garrison.common.catalogue_drweb import DRWEB_EVENTS
from garrison.common.catalogue_eset import ESET_EVENTS
from garrison.common.catalogue_sensor import SENSOR_EVENTS, SENSOR_HEALTH_EVENTS
from garrison.common.catalogue_telemetry import TELEMETRY_EVENTS
from garrison.common.catalogue_types import EventType, Family, Field

ALL: tuple[EventType, ...] = (
    *DRWEB_EVENTS,
    *SENSOR_EVENTS,
    *TELEMETRY_EVENTS,
    *ESET_EVENTS,
    *SENSOR_HEALTH_EVENTS,
)
CATALOGUE: dict[str, EventType] = {e.name: e for e in ALL}
if len(CATALOGUE) != len(ALL):
    raise RuntimeError("two event types share a name")
PROCEDURES: dict[str, EventType] = {e.procedure: e for e in ALL if e.procedure}

MAX_STRING = 65536
MAX_EVENT_BYTES = 256 * 1024
# The integers the event log can store: its JSON is written with orjson, which holds signed
# and unsigned 64-bit values (1e308 sent for an integer would otherwise be a 1,024-bit one).
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
_HEX = {"md5": 32, "sha1": 40, "sha256": 64}
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
_MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}([-:]?)[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")
_FAMILY_KEY = re.compile(r"^(.+)_(\d+)$")


class EventInvalidError(ValueError):
    """An event that does not match its catalogue declaration; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem


def is_mac(value: str) -> bool:
    """A MAC address in a form the ``mac`` field type accepts."""
    return bool(_MAC_RE.match(value.strip()))


def _in_range(value: dt.datetime, field: str) -> dt.datetime:
    """In UTC, and within years 1-9999 once there (or it cannot be stored or formatted)."""
    try:
        utc = value.astimezone(dt.UTC)
        utc.isoformat()
        if not 1 < utc.year < 9999:
            raise OverflowError
    except (OverflowError, ValueError):
        raise EventInvalidError(field, "timestamp out of range") from None
    return utc


def parse_timestamp(value: Any, field: str = "time") -> dt.datetime:
    """Epoch seconds, epoch milliseconds (LimaCharlie) or ISO-8601; naive means UTC."""
    if isinstance(value, bool):
        raise EventInvalidError(field, "must be a timestamp, not a boolean")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) >= 1e11 else value
        try:
            return _in_range(dt.datetime.fromtimestamp(seconds, dt.UTC), field)
        except (OverflowError, OSError, ValueError):
            raise EventInvalidError(field, f"timestamp out of range: {value!r}") from None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return parse_timestamp(float(text), field)
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise EventInvalidError(field, f"cannot parse timestamp {text[:64]!r}") from None
        return _in_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC), field)
    raise EventInvalidError(field, f"must be a timestamp, got {type(value).__name__}")


def format_timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _coerce(f: Field, value: Any, name: str) -> Any:
    kind = f.type
    if value is None:
        return None
    if kind == "string":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise EventInvalidError(name, f"must be a string, got {type(value).__name__}")
        text = str(value)
        if len(text) > MAX_STRING:
            raise EventInvalidError(name, f"longer than {MAX_STRING} characters")
        if "\x00" in text:
            raise EventInvalidError(name, "must not contain NUL characters")
        return text
    if kind == "integer":
        if isinstance(value, bool):
            raise EventInvalidError(name, "must be an integer, not a boolean")
        whole: int | None = None
        if isinstance(value, int):
            whole = value
        elif isinstance(value, float) and value.is_integer():
            whole = int(value)
        elif isinstance(value, str) and re.fullmatch(r"-?\d{1,20}", value.strip()):
            whole = int(value.strip())
        if whole is None:
            raise EventInvalidError(name, f"must be an integer, got {value!r:.64}")
        if not INT_MIN <= whole <= INT_MAX:
            raise EventInvalidError(name, f"is out of range: {value!r:.64}")
        return whole
    if kind == "number":
        if isinstance(value, bool):
            raise EventInvalidError(name, "must be a number, not a boolean")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise EventInvalidError(name, f"must be a number, got {value!r:.64}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise EventInvalidError(name, "must be a finite number")
        return number
    if kind == "boolean":
        # LimaCharlie sends "boolean integers" (0/1).
        if isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false", "0", "1"):
            return value.lower() in ("true", "1")
        raise EventInvalidError(name, f"must be a boolean, got {value!r:.64}")
    if kind == "timestamp":
        return format_timestamp(parse_timestamp(value, name))
    if kind == "ip":
        try:
            return str(ipaddress.ip_address(str(value).strip()))
        except ValueError:
            raise EventInvalidError(name, f"not an IP address: {value!r:.64}") from None
    if kind == "mac":
        text = str(value).strip()
        if not _MAC_RE.match(text):
            raise EventInvalidError(name, f"not a MAC address: {value!r:.64}")
        return text.upper()
    if kind in _HEX:
        text = str(value).strip()
        if len(text) != _HEX[kind] or not _HEX_RE.match(text):
            raise EventInvalidError(name, f"not a {kind.upper()} hex digest: {value!r:.80}")
        return text.lower()
    if kind == "object":
        if not isinstance(value, dict):
            raise EventInvalidError(name, "must be a JSON object")
        if f.keys is not None:
            unknown = sorted(set(value) - set(f.keys))
            if unknown:
                raise EventInvalidError(f"{name}.{unknown[0]}", "is not a known field")
        for key, item in value.items():
            if isinstance(item, dict | list):
                raise EventInvalidError(f"{name}.{key}", "must be a scalar value")
            if isinstance(item, str) and len(item) > MAX_STRING:
                raise EventInvalidError(f"{name}.{key}", f"longer than {MAX_STRING} characters")
        return dict(value)
    raise EventInvalidError(name, f"unknown field type {kind}")


def _family_members(event: EventType) -> dict[str, tuple[Family, Field]]:
    return {m.name: (fam, m) for fam in event.families for m in fam.members}


def validate(event: EventType, data: Any) -> dict[str, Any]:
    """The event's data, checked against its declaration and normalised (timestamps to
    ISO-8601 UTC, hashes lower-case, booleans from 0/1)."""
    if not isinstance(data, dict):
        raise EventInvalidError("data", "must be a JSON object")
    out: dict[str, Any] = {}
    members = _family_members(event)
    counts = {fam.count for fam in event.families}
    indexed: dict[str, dict[int, dict[str, Any]]] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise EventInvalidError(str(key), "field names must be strings")
        declared = event.field(key)
        if declared is not None:
            coerced = _coerce(declared, value, key)
            if coerced is not None:
                out[key] = coerced
            continue
        if key in counts:
            out[key] = _coerce(Field(key, "integer"), value, key)
            continue
        match = _FAMILY_KEY.match(key)
        if match and match.group(1) in members:
            family, member = members[match.group(1)]
            index = int(match.group(2))
            if index >= family.max_items:
                raise EventInvalidError(key, f"index above {family.max_items - 1}")
            coerced = _coerce(member, value, key)
            if coerced is not None:
                out[key] = coerced
                indexed.setdefault(family.count, {}).setdefault(index, {})[member.name] = True
            continue
        raise EventInvalidError(key, f"is not a field of {event.name}")
    for f in event.fields:
        if f.required and f.name not in out:
            raise EventInvalidError(f.name, "is required")
    for family in event.families:
        items = indexed.get(family.count, {})
        count = out.get(family.count)
        if count is None:
            count = len(items)
            out[family.count] = count
        if count < 0 or count > family.max_items:
            raise EventInvalidError(family.count, f"must be 0 to {family.max_items}")
        if items and max(items) >= count:
            raise EventInvalidError(family.count, f"is {count} but index {max(items)} is given")
        for index in range(count):
            for member in family.members:
                if member.required and f"{member.name}_{index}" not in out:
                    raise EventInvalidError(f"{member.name}_{index}", "is required")
    return out


def event_time(event: EventType, data: dict[str, Any]) -> dt.datetime | None:
    if event.time_field and data.get(event.time_field):
        return parse_timestamp(data[event.time_field], event.time_field)
    return None


def search_terms(event: EventType, data: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, value) pairs to index for search: hashes, process names, paths, users…"""
    terms: list[tuple[str, str]] = []
    members = _family_members(event)
    for key, value in data.items():
        declared = event.field(key)
        if declared is None:
            match = _FAMILY_KEY.match(key)
            if match and match.group(1) in members:
                declared = members[match.group(1)][1]
        if declared is None or declared.search is None or value in (None, ""):
            continue
        text = str(value)
        if declared.search in ("process", "path", "user", "host", "upid", "pupid"):
            text = text.lower()
        terms.append((declared.search, text[:255]))
        if declared.search == "path" or declared.search == "process":
            base = re.split(r"[\\/]", text)[-1]
            if base and base != text:
                terms.append(("process" if declared.search == "process" else "path", base[:255]))
    return terms
