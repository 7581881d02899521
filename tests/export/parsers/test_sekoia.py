"""Sekoia's intake format ``eset_protect``: ``occured`` parsed as ``%d-%b-%Y %H:%M:%S``, then one
stage per type, chosen by exact ``event_type`` (``ESET Inspect Alert`` as well as
``EnterpriseInspectorAlert_Event``); ``file.path`` only when ``object_type`` is ``File``; the
firewall's ``event.type`` from ``action`` (``Blocked`` → denied, ``Allowed`` → allowed)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from tests.export.parsers import headers, samples
from tests.export.parsers.conftest import KINDS, Received

STAGES = {
    "Threat_Event": "threat",
    "FirewallAggregated_Event": "firewall",
    "HipsAggregated_Event": "hips",
    "Audit_Event": "audit",
    "EnterpriseInspectorAlert_Event": "inspect",
    "ESET Inspect Alert": "inspect",
}
FIREWALL_TYPES = {"Blocked": "denied", "Allowed": "allowed"}


def sekoia(message: str) -> dict[str, Any] | None:
    try:
        event = json.loads(message)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    out: dict[str, Any] = {"stage": STAGES.get(str(event.get("event_type")))}
    out["timestamp"] = dt.datetime.strptime(event["occured"], "%d-%b-%Y %H:%M:%S")
    if event.get("object_type") == "File":
        out["file.path"] = event.get("object_uri")
    if out["stage"] == "firewall":
        out["event.type"] = FIREWALL_TYPES.get(str(event.get("action")))
    return out


def read(line: str) -> dict[str, Any] | None:
    header = headers.syslog(line)
    assert header is not None
    return sekoia(header.message)


@pytest.mark.parametrize("kind", KINDS)
def test_eset_lines(kind: str) -> None:
    for name, line in samples.lines(kind).items():
        out = read(line)
        assert out is not None, name
        assert out["stage"] == STAGES.get(name), name
    assert read(samples.lines(kind)["Threat_Event"])["file.path"].startswith("file:///")  # type: ignore[index]
    assert read(samples.lines(kind)["FirewallAggregated_Event"])["event.type"] == "denied"  # type: ignore[index]


def test_garrison_lines(received: Received) -> None:
    for kind in KINDS:
        out = {}
        for line in received.of("eset-json", kind):
            parsed = read(line)
            assert parsed is not None, line
            out[json.loads(headers.body(line))["event_type"]] = parsed
        assert set(out) == set(samples.SEVEN)
        for name in samples.SEVEN:
            assert out[name]["stage"] == STAGES.get(name), name
        assert out["Threat_Event"]["file.path"] == "file:///tmp/eicar.com"
        assert out["FirewallAggregated_Event"]["event.type"] in ("denied", "allowed")


def test_the_other_inspect_name(received: Received) -> None:
    names = [json.loads(headers.body(line))["event_type"] for line in received.lines["inspect"]]
    assert "ESET Inspect Alert" in names
    assert "EnterpriseInspectorAlert_Event" not in names


def test_garrison_own_types_take_no_stage(received: Received) -> None:
    own = [line for line in received.lines["own"] if "garrison_event_type" in line]
    assert own
    for line in own:
        parsed = read(line)
        assert parsed is not None
        assert parsed["stage"] is None
