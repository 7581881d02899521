"""Third-party parsers and IBM's LEEF rules, applied to what rsyslog wrote."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import cefp
from syslog_rfc5424_parser import SyslogMessage

ESET_TYPES = {
    "Threat_Event",
    "FirewallAggregated_Event",
    "HipsAggregated_Event",
    "Audit_Event",
    "EnterpriseInspectorAlert_Event",
    "BlockedFiles_Event",
    "FilteredWebsites_Event",
}
SEVERITIES = {"Information", "Notice", "Warning", "Error", "Critical", "Fatal"}
# The seed's types for each ESET key (bool and numbers are JSON bool and numbers).
BOOL_KEYS = {"threat_handled", "need_restart", "inbound", "resolved", "handled"}
NUMBER_KEYS = {"source_port", "target_port", "aggregate_count", "count"}
SEED_KEYS = {
    "Threat_Event": {
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
    },
    "FirewallAggregated_Event": {
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
    },
    "HipsAggregated_Event": {
        "application",
        "operation",
        "target",
        "action",
        "rule_name",
        "rule_id",
        "aggregate_count",
    },
    "Audit_Event": {"domain", "action", "target", "detail", "user", "result"},
    "FilteredWebsites_Event": {
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
    },
    "EnterpriseInspectorAlert_Event": {
        "processname",
        "username",
        "rulename",
        "count",
        "hash",
        "eiconsolelink",
        "eialarmid",
    },
    "BlockedFiles_Event": {
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
    },
}
COMMON = {"event_type", "ipv4", "ipv6", "hostname", "source_uuid", "occured", "severity"}
# What the eset profile adds: the keys real ESET servers send beyond the seed's.
ESET_COMMON = {"group_name", "group_description", "os_name"}
ESET_EXTRA = {
    "FirewallAggregated_Event": {"action", "handled"},
    "HipsAggregated_Event": {"handled"},
    "EnterpriseInspectorAlert_Event": {"computer_severity_score", "severity_score"},
}
# Each profile's syslog identity: RFC 5424 APP-NAME, PROCID and MSGID of an ESET type.
APP_NAMES = {"garrison": "garrison", "eset": "ERAServer"}


def envelope(line: str, profile: str) -> SyslogMessage:
    """RFC 5424 envelope, parsed by a third-party parser, with ``profile``'s identity."""
    message = SyslogMessage.parse(line)
    assert message.appname == APP_NAMES[profile]
    if profile == "eset":  # ESET: its process id, no MSGID
        assert str(message.procid).isdigit(), message.procid
        assert message.msgid in (None, "-"), message.msgid
    return message


def eset_json(payload: str, profile: str = "garrison") -> dict[str, Any]:
    record = json.loads(payload)
    assert isinstance(record, dict)
    assert record["severity"] in SEVERITIES
    dt.datetime.strptime(record["occured"], "%d-%b-%Y %H:%M:%S")
    assert "occurred" not in record
    if record["event_type"] in ESET_TYPES:
        allowed = COMMON | SEED_KEYS[record["event_type"]]
        if profile == "eset":
            allowed |= ESET_COMMON | ESET_EXTRA.get(record["event_type"], set())
        assert set(record) <= allowed, set(record) - allowed
        for key, value in record.items():
            if key in BOOL_KEYS:
                assert isinstance(value, bool), (key, value)
            elif key in NUMBER_KEYS:
                assert isinstance(value, int | float), key
                assert not isinstance(value, bool), key
            else:
                assert isinstance(value, str), (key, value)
    return record


def cef(payload: str) -> dict[str, Any]:
    parsed: dict[str, Any] = cefp.parse(payload)
    assert parsed["version"] == "0"
    assert parsed["device"]["vendor"] == "Garrison"
    assert 0 <= int(parsed["severity"]) <= 10
    return parsed


_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
LEEF_TIME = {"MMM dd yyyy HH:mm:ss": "%b %d %Y %H:%M:%S"}


def leef(payload: str) -> dict[str, str]:
    """IBM's LEEF rules: header fields split on unescaped pipes; LEEF:1.0 attributes are
    tab-separated, LEEF:2.0 declares its delimiter (a character or xHH) as the 6th field;
    each attribute is key=value, keys without spaces, values without the delimiter;
    devTime matches devTimeFormat; sev is 1-10."""
    assert payload.startswith(("LEEF:1.0|", "LEEF:2.0|"))
    version = payload[5:8]
    parts = _UNESCAPED_PIPE.split(payload, maxsplit=6 if version == "2.0" else 5)
    if version == "1.0":
        assert len(parts) == 6
        delimiter, attributes = "\t", parts[5]
    else:
        assert len(parts) == 7
        declared = parts[5]
        delimiter = (
            chr(int(declared[1:], 16)) if re.fullmatch(r"x[0-9A-Fa-f]{2}", declared) else declared
        )
        assert len(delimiter) == 1
        attributes = parts[6]
    for field in parts[1:5]:
        assert field, "empty header field"
    out = {"_vendor": parts[1], "_product": parts[2], "_version": parts[3], "_event_id": parts[4]}
    for pair in attributes.split(delimiter):
        key, sep, value = pair.partition("=")
        assert sep, pair
        assert key, pair
        assert " " not in key, pair
        assert "\n" not in value, pair
        out[key] = value
    if "devTime" in out:
        fmt = LEEF_TIME[out["devTimeFormat"]]
        dt.datetime.strptime(out["devTime"], fmt)
    assert 1 <= int(out["sev"]) <= 10
    return out
