"""Wazuh: pre-decoding splits a BSD header (it has no RFC 5424 form); decoder ``eset-bsd``
(0575-eset-remote_decoders.xml) takes ``<program_name>ERAServer</program_name>`` and its
child runs the JSON decoder on the rest; rules 0925-eset-remote key on ``event_type`` and on
``severity`` Warning/Error/Critical."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.export.parsers import headers, samples
from tests.export.parsers.conftest import Received

RULES = {  # rule id -> (field, pattern)
    42002: ("event_type", r"^Threat_Event$"),
    42003: ("event_type", r"^FirewallAggregated_Event$"),
    42004: ("event_type", r"^HipsAggregated_Event$"),
    42005: ("event_type", r"^Audit_Event$"),
    42006: ("event_type", r"^EnterpriseInspectorAlert_Event$"),
    42007: ("severity", r"^Warning$"),
    42008: ("severity", r"^Error$"),
    42009: ("severity", r"^Critical$"),
}


def wazuh(line: str) -> tuple[dict[str, Any] | None, set[int]]:
    """(the fields the JSON decoder extracted, the rules that fire); (None, ∅) when the
    ESET decoder does not take the line."""
    header = headers.wazuh_predecode(line)
    if header is None or not re.fullmatch(r"ERAServer", header.program):
        return None, set()
    try:
        fields = json.loads(header.message)
    except ValueError:
        return None, set()
    if not isinstance(fields, dict):
        return None, set()
    fired = {
        rule
        for rule, (field, pattern) in RULES.items()
        if isinstance(fields.get(field), str) and re.search(pattern, fields[field])
    }
    return fields, fired | {42001}


def test_eset_lines() -> None:
    for name, line in samples.lines("rfc3164").items():
        fields, fired = wazuh(line)
        assert fields is not None, name
        assert fields["event_type"] == name, name
        assert 42001 in fired
    # ESET's own RFC 5424 lines are not split either: RFC 3164 is the envelope that works.
    assert all(wazuh(line)[0] is None for line in samples.lines("rfc5424").values())
    assert wazuh(samples.HEARTBEAT)[0] is None  # plain text: no JSON


def test_garrison_lines(received: Received) -> None:
    decoded: dict[str, set[int]] = {}
    for line in received.of("eset-json", "rfc3164"):
        fields, fired = wazuh(line)
        assert fields is not None, line
        decoded[fields["event_type"]] = fired - {42007, 42008, 42009}
        severity_rules = {"Warning": 42007, "Error": 42008, "Critical": 42009}
        if fields["severity"] in severity_rules:
            assert severity_rules[fields["severity"]] in fired
    assert set(decoded) == set(samples.SEVEN)
    for name in samples.SEVEN:  # the same type rules as ESET's own line of that type
        _, eset_fired = wazuh(samples.lines("rfc3164")[name])
        assert decoded[name] == eset_fired - {42007, 42008, 42009}, name
    assert all(wazuh(line)[0] is None for line in received.of("eset-json", "rfc5424"))


def test_garrison_own_types_are_not_decoded(received: Received) -> None:
    own = [line for line in received.lines["own"] if "garrison_event_type" in line]
    assert own
    assert all(wazuh(line)[0] is None for line in own)


@pytest.mark.parametrize("body", ["{}", "[1]"])
def test_the_check_can_fail(body: str) -> None:
    assert wazuh(samples.BSD_HEADER.replace("ERAServer", "garrison") + body)[0] is None
