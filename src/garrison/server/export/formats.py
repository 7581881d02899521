"""The three export formats, written by hand: ESET JSON, LEEF (1.0 and 2.0) and CEF.

Each turns a :class:`~garrison.server.export.mapping.Record` into one line of text that
cannot be split or misread by its parser, whatever the field values hold.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from garrison import __version__
from garrison.common.vocabulary import Severity
from garrison.server.export.mapping import DATE_KEYS, ESET_TIME, TIME_KEY, Record
from garrison.server.export.syslog import SEPARATORS, blank_separators, escape_separators

VENDOR = "Garrison"
PRODUCT = "Garrison Server"
Formatter = Callable[[Record], str]


def eset_json(record: Record) -> str:
    """One JSON object, keys and types as ESET PROTECT exports them.  orjson escapes C0
    controls but writes DEL, C1 (U+0085) and U+2028/U+2029 raw, which line-based receivers
    split on: those are escaped too (they can only occur inside strings)."""
    return escape_separators(orjson.dumps(record.fields).decode("utf-8"))


# LEEF -----------------------------------------------------------------------------------
LEEF_TIME_FORMAT = "MMM dd yyyy HH:mm:ss"
LEEF_TIME = "%b %d %Y %H:%M:%S"  # ESET's LEEF date format
# LEEF's sev and CEF's Severity share one 1-10 scale.
SEVERITY_SCALE: dict[str, int] = {
    Severity.INFORMATION: 1,
    Severity.NOTICE: 3,
    Severity.WARNING: 5,
    Severity.ERROR: 7,
    Severity.CRITICAL: 9,
    Severity.FATAL: 10,
}
# Standard LEEF attribute names for common ESET keys.
LEEF_KEYS = {
    "ipv4": "src",
    "ipv6": "srcv6",
    "username": "usrName",
    "user": "usrName",
    "account": "usrName",
    "source_address": "src",
    "target_address": "dst",
    "source_port": "srcPort",
    "target_port": "dstPort",
    "protocol": "proto",
    "hostname": "identHostName",
}


def _leef_header(value: str) -> str:
    return blank_separators(value.replace("\\", "\\\\").replace("|", "\\|"))


# Per delimiter: what a LEEF value must not hold (the delimiter, a tab, a separator).  Most
# values hold none of it: one search, and the value goes as it is.
_LEEF_UNSAFE: dict[str, re.Pattern[str]] = {}


def _leef_unsafe(delimiter: str) -> re.Pattern[str]:
    pattern = _LEEF_UNSAFE.get(delimiter)
    if pattern is None:
        pattern = re.compile(f"[{re.escape(delimiter)}\t]|{SEPARATORS.pattern}")
        _LEEF_UNSAFE[delimiter] = pattern
    return pattern


def _leef_value(value: Any, delimiter: str) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if _leef_unsafe(delimiter).search(text) is None:
        return text
    # A value may never hold the delimiter (nor a line break or other separator): the
    # record must stay whole.  LEEF has no escape: they become spaces.
    return blank_separators(text.replace(delimiter, " ").replace("\t", " "))


def _leef_attributes(record: Record, delimiter: str) -> str:
    attrs: dict[str, Any] = {
        "cat": record.event_type,
        "devTime": record.time.strftime(LEEF_TIME),
        "devTimeFormat": LEEF_TIME_FORMAT,
        "sev": SEVERITY_SCALE[record.severity],
    }
    for key, value in record.fields.items():
        if key in ("event_type", TIME_KEY):
            continue
        name = LEEF_KEYS.get(key, key)
        if name in attrs:
            name = key
        attrs[name] = value
    return delimiter.join(f"{key}={_leef_value(value, delimiter)}" for key, value in attrs.items())


@functools.lru_cache(maxsize=1024)
def _leef_event_id(event_type: str) -> str:
    return _leef_header(event_type)


# The header's fixed part, escaped once.
_LEEF_PRODUCT = "|".join([_leef_header(VENDOR), _leef_header(PRODUCT), _leef_header(__version__)])


def leef1(record: Record) -> str:
    header = f"LEEF:1.0|{_LEEF_PRODUCT}|{_leef_event_id(record.event_type)}"
    return f"{header}|{_leef_attributes(record, chr(9))}"


def leef2(record: Record, delimiter: str = "^") -> str:
    if len(delimiter) != 1 or delimiter in "|=\\" or delimiter.isalnum():
        raise ValueError(f"unusable LEEF 2.0 delimiter {delimiter!r}")
    declared = f"x{ord(delimiter):02x}" if not delimiter.isprintable() else delimiter
    header = f"LEEF:2.0|{_LEEF_PRODUCT}|{_leef_event_id(record.event_type)}|{declared}"
    return f"{header}|{_leef_attributes(record, delimiter)}"


# CEF ------------------------------------------------------------------------------------
# Standard CEF extension keys for the ESET keys and catalogue fields that have one.
CEF_KEYS = {
    "ipv4": "src",
    "ipv6": "c6a2",
    "hostname": "dvchost",
    "source_uuid": "deviceExternalId",
    "source_address": "src",
    "target_address": "dst",
    "source_port": "spt",
    "target_port": "dpt",
    "protocol": "proto",
    "username": "suser",
    "user": "suser",
    "account": "suser",
    "processname": "sproc",
    "process_name": "sproc",
    "application": "sproc",
    "object_uri": "filePath",
    "hash": "fileHash",
    "action_taken": "act",
    "action": "act",
    "threat_name": "cs1",
    "rule_name": "cs2",
    "rule_id": "cs3",
    "aggregate_count": "cnt",
    "file_name": "fname",
    "file_path": "filePath",
    "sha256": "fileHash",
    "md5": "oldFileHash",
    "port": "dpt",
    "inbound": "cs4",
}
CEF_LABELS = {
    "cs1": "threatName",
    "cs2": "ruleName",
    "cs3": "ruleId",
    "cs4": "inbound",
    "c6a2": "sourceIPv6",
}


def _cef_header(value: str) -> str:
    return blank_separators(value.replace("\\", "\\\\").replace("|", "\\|"))


# What a CEF value must escape: most values hold none of it, and go as they are.
_CEF_UNSAFE = re.compile(f"[\\\\=]|{SEPARATORS.pattern}")


def _cef_value(value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if _CEF_UNSAFE.search(text) is None:
        return text
    # CEF's own escapes first; any other separator as \uXXXX (unambiguous: every literal
    # backslash is doubled before).
    return escape_separators(
        text.replace("\\", "\\\\")
        .replace("=", "\\=")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


@functools.lru_cache(maxsize=4096)
def _cef_custom_key(key: str) -> str:
    # Cached: the keys are the catalogue's fields and ESET's, the same in every record.
    parts = [p for p in key.replace("-", "_").split("_") if p]
    name = "garrison" + "".join(p[:1].upper() + p[1:] for p in parts)
    return "".join(c for c in name if c.isalnum())


_CEF_PRODUCT = "|".join([_cef_header(VENDOR), _cef_header(PRODUCT), _cef_header(__version__)])


@functools.lru_cache(maxsize=1024)
def _cef_type_header(event_type: str, garrison_type: str) -> str:
    return f"{_cef_header(event_type)}|{_cef_header(garrison_type)}"


def cef(record: Record) -> str:
    header = (
        f"CEF:0|{_CEF_PRODUCT}|{_cef_type_header(record.event_type, record.garrison_type)}"
        f"|{SEVERITY_SCALE[record.severity]}"
    )
    ext = _cef_extension(
        record, {"rt": int(record.time.timestamp() * 1000)}, CEF_KEYS, _cef_custom_key, CEF_LABELS
    )
    return header + "|" + " ".join(f"{k}={_cef_value(v)}" for k, v in ext.items())


def _cef_extension(
    record: Record,
    ext: dict[str, Any],
    keys: Mapping[str, str],
    custom: Callable[[str], str],
    labels: Mapping[str, str],
    after: Mapping[str, tuple[str, Any]] | None = None,
) -> dict[str, Any]:
    """A CEF extension: ``ext``'s pairs first, then each field under its CEF key (``keys``,
    else ``custom``'s name, and ``custom``'s when the key is taken), with its label where
    ``labels`` has one, and ``after``'s pair right after the field that names it."""
    for key, value in record.fields.items():
        if key in ("event_type", TIME_KEY, "severity"):
            continue
        name = keys.get(key) or custom(key)
        if name in ext:
            name = custom(key)
        ext[name] = value
        if name in labels:
            ext[name + "Label"] = labels[name]
        if after and key in after:
            extra, extra_value = after[key]
            ext[extra] = extra_value
    return ext


FORMATS: dict[str, Formatter] = {
    "eset-json": eset_json,
    "leef": leef1,
    "leef2": leef2,
    "cef": cef,
}


# The eset profile: ESET PROTECT's own LEEF and CEF ------------------------------------
ESET_VENDOR = "ESET"
ESET_LEEF_PRODUCT = "RemoteAdministrator"
ESET_CEF_PRODUCT = "Protect"
# ESET's LEEF devTime carries its zone (GMT); its CEF rt and its LEEF firstseen do not.
ESET_LEEF_TIME_FORMAT = "MMM dd yyyy HH:mm:ss z"
ESET_LEEF_TIME = "%b %d %Y %H:%M:%S GMT"
ESET_CEF_TIME = "%b %d %Y %H:%M:%S"
# ESET's 1-10 scale (its CEF documentation: 2 Information … 10 Fatal), in LEEF's sev too.
ESET_SEVERITY: dict[str, int] = {
    Severity.INFORMATION: 2,
    Severity.NOTICE: 3,
    Severity.WARNING: 5,
    Severity.ERROR: 7,
    Severity.CRITICAL: 8,
    Severity.FATAL: 10,
}
# ESET type → (its category, its CEF class id: 100-199 threats, 200-299 firewall…).
ESET_CATEGORIES: dict[str, tuple[str, int]] = {
    "Threat_Event": ("ESET Threat Event", 100),
    "FirewallAggregated_Event": ("ESET Firewall Event", 200),
    "HipsAggregated_Event": ("ESET HIPS Event", 300),
    "Audit_Event": ("ESET RA Audit Event", 400),
    "EnterpriseInspectorAlert_Event": ("ESET Inspect Event", 500),
    "ESET Inspect Alert": ("ESET Inspect Event", 500),
    "BlockedFiles_Event": ("ESET Blocked File Event", 600),
    "FilteredWebsites_Event": ("ESET Filtered Website Event", 700),
}
# LEEF's event id is the category without "ESET " (``Threat Event``, ``Firewall Event``…);
# the audit category's "RA" (Remote Administrator) is ESET's CEF spelling only.
ESET_LEEF_EVENTS = {
    name: category.removeprefix("ESET ").removeprefix("RA ")
    for name, (category, _) in ESET_CATEGORIES.items()
}
# ESET's LEEF attribute names (its documented samples and the QRadar/Exabeam parsers).
ESET_LEEF_KEYS = {
    "hostname": "deviceName",
    "source_uuid": "deviceUuid",
    "group_name": "deviceGroupName",
    "os_name": "deviceOSName",
    "group_description": "deviceGroupDescription",
    "ipv4": "src",
    "ipv6": "srcIPv6",
    "username": "accountName",
    "account": "accountName",
    "scanner_id": "scannerID",
    "scan_id": "scanID",
    "event": "eventDesc",
    "source_address": "src",
    "target_address": "dst",
    "source_port": "srcPort",
    "target_port": "dstPort",
    "protocol": "proto",
    "processname": "processName",
    "process_name": "processName",
    "rulename": "ruleName",
}


@functools.lru_cache(maxsize=4096)
def _camel(key: str) -> str:
    first, *rest = [p for p in key.split("_") if p] or [key]
    return first + "".join(p[:1].upper() + p[1:] for p in rest)


def _eset_leef_value(key: str, value: Any) -> Any:
    if key == "handled" and isinstance(value, bool):
        return 1 if value else 0  # ESET writes handled=1, but threatHandled=true
    if key in DATE_KEYS and isinstance(value, str):
        try:
            return dt.datetime.strptime(value, ESET_TIME).strftime(LEEF_TIME)
        except ValueError:
            return value
    return value


def eset_leef(record: Record) -> str:
    """ESET PROTECT's LEEF 1.0: ``LEEF:1.0|ESET|RemoteAdministrator|<version>|Threat
    Event|cat=ESET Threat Event<TAB>sev=…<TAB>devTime=Jan 18 2022 14:46:00 GMT…``."""
    category, _ = ESET_CATEGORIES[record.event_type]
    header = "|".join(
        [
            "LEEF:1.0",
            ESET_VENDOR,
            ESET_LEEF_PRODUCT,
            _leef_header(__version__),
            ESET_LEEF_EVENTS[record.event_type],
        ]
    )
    attrs: dict[str, Any] = {
        "cat": category,
        "sev": ESET_SEVERITY[record.severity],
        "devTime": record.time.astimezone(dt.UTC).strftime(ESET_LEEF_TIME),
        "devTimeFormat": ESET_LEEF_TIME_FORMAT,
    }
    for key, value in record.fields.items():
        if key in ("event_type", TIME_KEY, "severity"):
            continue
        attrs[ESET_LEEF_KEYS.get(key) or _camel(key)] = _eset_leef_value(key, value)
    tab = chr(9)
    return header + "|" + tab.join(f"{k}={_leef_value(v, tab)}" for k, v in attrs.items())


ESET_CEF_KEYS = {
    "ipv4": "dvc",
    "ipv6": "c6a1",
    "hostname": "dvchost",
    "source_uuid": "deviceExternalId",
    "group_name": "ESETProtectDeviceGroupName",
    "os_name": "ESETProtectDeviceOsName",
    "group_description": "ESETProtectDeviceGroupDescription",
    "source_address": "src",
    "target_address": "dst",
    "source_port": "spt",
    "target_port": "dpt",
    "protocol": "proto",
    "username": "suser",
    "account": "suser",
    "user": "suser",
    "processname": "sproc",
    "process_name": "sproc",
    "application": "sproc",
    "object_uri": "filePath",
    "hash": "fileHash",
    "action_taken": "act",
    "action": "act",
    "aggregate_count": "cnt",
}
ESET_CEF_LABELS = {"c6a1": "Device IPv6 Address"}
# What ESET puts in the CEF header's Name: a brief description of what happened.
_ESET_CEF_NAME_KEYS = {
    "Threat_Event": "threat_name",
    "FirewallAggregated_Event": "event",
    "HipsAggregated_Event": "operation",
    "Audit_Event": "detail",
    "EnterpriseInspectorAlert_Event": "rulename",
    "ESET Inspect Alert": "rulename",
    "BlockedFiles_Event": "description",
    "FilteredWebsites_Event": "event",
}


@functools.lru_cache(maxsize=4096)
def _eset_cef_key(key: str) -> str:
    name = "ESETProtect" + "".join(p[:1].upper() + p[1:] for p in key.split("_") if p)
    return "".join(c for c in name if c.isalnum())


def eset_cef(record: Record) -> str:
    """ESET PROTECT's CEF: ``CEF:0|ESET|Protect|<version>|<class id>|<description>|<2-10>|
    cat=ESET Threat Event dvc=… rt=Jan 18 2022 14:46:00``."""
    category, class_id = ESET_CATEGORIES[record.event_type]
    name = record.fields.get(_ESET_CEF_NAME_KEYS[record.event_type]) or category
    header = "|".join(
        [
            "CEF:0",
            ESET_VENDOR,
            ESET_CEF_PRODUCT,
            _cef_header(__version__),
            str(class_id),
            _cef_header(str(name)),
            str(ESET_SEVERITY[record.severity]),
        ]
    )
    rt = record.time.astimezone(dt.UTC).strftime(ESET_CEF_TIME)
    ext = _cef_extension(
        record,
        {"cat": category},
        ESET_CEF_KEYS,
        _eset_cef_key,
        ESET_CEF_LABELS,
        after={"source_uuid": ("rt", rt)},  # where ESET's own lines put it
    )
    ext.setdefault("rt", rt)
    return header + "|" + " ".join(f"{k}={_cef_value(v)}" for k, v in ext.items())


ESET_FORMATS: dict[str, Formatter] = {
    "eset-json": eset_json,
    "leef": eset_leef,
    "cef": eset_cef,
}
