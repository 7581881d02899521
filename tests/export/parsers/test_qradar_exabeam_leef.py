"""QRadar's ESET DSM and Exabeam's ESET LEEF parsers: ``LEEF:1.0|ESET|RemoteAdministrator|``,
the event id and its ``cat=ESET <event>`` (Exabeam's conditions: ``LEEF:``,
``|ESET|RemoteAdministrator|``, ``cat=ESET Threat Event`` and ``threatType=`` for threats,
``cat=ESET Firewall Event`` for firewall events), ``sev=``, ``devTime`` read with
``devTimeFormat`` ``MMM dd yyyy HH:mm:ss z`` (``Jan 18 2022 14:46:00 GMT``), camelCase
keys, tab-separated."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from garrison.server.export import formats
from garrison.server.export.mapping import StationInfo, build
from tests.export.parsers import headers, samples
from tests.export.parsers.conftest import KINDS, Received

NOW = dt.datetime(2022, 1, 18, 14, 46, tzinfo=dt.UTC)
EVENTS = {
    "Threat Event": "ESET Threat Event",
    "Firewall Event": "ESET Firewall Event",
    "HIPS Event": "ESET HIPS Event",
    "Audit Event": "ESET RA Audit Event",
    "Inspect Event": "ESET Inspect Event",
    "Blocked File Event": "ESET Blocked File Event",
    "Filtered Website Event": "ESET Filtered Website Event",
}
EXABEAM = {  # parser -> its conditions (substrings of the raw line)
    "threatevent": ("LEEF:", "|ESET|RemoteAdministrator|", "cat=ESET Threat Event", "threatType="),
    "firewallevent": ("LEEF:", "|ESET|RemoteAdministrator|", "cat=ESET Firewall Event"),
}
_PIPE = re.compile(r"(?<!\\)\|")


def qradar(payload: str) -> dict[str, Any] | None:
    if not payload.startswith("LEEF:1.0|ESET|RemoteAdministrator|"):
        return None
    parts = _PIPE.split(payload, maxsplit=5)
    if len(parts) != 6:
        return None
    attrs: dict[str, str] = {}
    for pair in parts[5].split("\t"):
        key, sep, value = pair.partition("=")
        if not sep or not key or " " in key:
            return None
        attrs.setdefault(key, value)  # the first of a repeated key (ESET repeats src)
    if attrs.get("devTimeFormat") != "MMM dd yyyy HH:mm:ss z":
        return None
    stamp, _, zone = attrs["devTime"].rpartition(" ")
    dt.datetime.strptime(stamp, "%b %d %Y %H:%M:%S")
    if zone != "GMT" or not 1 <= int(attrs["sev"]) <= 10:
        return None
    if EVENTS.get(parts[4]) != attrs.get("cat"):
        return None
    return {"event_id": parts[4], "category": attrs["cat"], **attrs}


def exabeam(line: str) -> set[str]:
    return {name for name, conditions in EXABEAM.items() if all(c in line for c in conditions)}


def _payload(line: str) -> str:
    header = headers.syslog(line)
    assert header is not None
    return header.message


def test_eset_lines() -> None:
    for name, line in samples.LEEF.items():
        out = qradar(line)
        assert out is not None, name
        assert exabeam(line) == {"threatevent" if name == "Threat_Event" else "firewallevent"}
    assert out is not None
    assert out["accountName" if "accountName" in out else "eventDesc"]


def test_garrison_lines(received: Received) -> None:
    for kind in KINDS:
        events: dict[str, dict[str, Any]] = {}
        for line in received.of("leef", kind):
            out = qradar(_payload(line))
            assert out is not None, line
            events[out["event_id"]] = out
        assert set(events) == set(EVENTS), kind
        threat = events["Threat Event"]
        assert exabeam(received_line(received, kind, "Threat Event")) == {"threatevent"}
        assert exabeam(received_line(received, kind, "Firewall Event")) == {"firewallevent"}
        assert threat["objectType"] == "File"
        assert threat["threatType"]
        assert threat["threatHandled"] in ("true", "false")
        assert events["Firewall Event"]["handled"] in ("0", "1")


def received_line(received: Received, kind: str, event: str) -> str:
    return next(line for line in received.of("leef", kind) if f"|{event}|" in line)


def test_garrisons_own_leef_is_not_esets() -> None:
    # The check can fail: Garrison's profile names Garrison, which the DSM does not match.
    record = build("threat_detected", 4, NOW, {"virus": "V"}, StationInfo("u", "h"))
    line = formats.leef1(record)
    assert qradar(line) is None
    assert exabeam(line) == set()
