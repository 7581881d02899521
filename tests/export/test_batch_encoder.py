"""The per-target encoder (issue 20 item 5): a batch encoded at once is the same bytes as
each record encoded alone, and the formats' fast paths (a value with nothing to escape
goes as it is) give what the full escaping gives."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from garrison.server.export import formats
from garrison.server.export.config import TargetOptions
from garrison.server.export.encoding import TargetEncoder, encoder
from garrison.server.export.mapping import StationInfo
from garrison.server.export.syslog import blank_separators, escape_separators
from garrison.server.export.target import Target

VALUES: list[Any] = [
    "plain",
    "",
    "a=b",
    "back\\slash",
    "line\nbreak",
    "crlf\r\nend",
    "tab\there",
    "caret^delim",
    "pipe|bar",
    "nel\x85x",
    "ls\u2028ps\u2029",
    "del\x7f",
    "null\x00",
    "ünïcødé ✓",
    True,
    False,
    42,
    3.5,
    None,
]


def cef_value_reference(value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return escape_separators(
        text.replace("\\", "\\\\")
        .replace("=", "\\=")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def leef_value_reference(value: Any, delimiter: str) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return blank_separators(text.replace(delimiter, " ").replace("\t", " "))


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_cef_values_escape_as_the_full_escaping_does(value: Any) -> None:
    assert formats._cef_value(value) == cef_value_reference(value)


@pytest.mark.parametrize("delimiter", ["\t", "^", "\x01", "~"])
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_leef_values_blank_as_the_full_blanking_does(value: Any, delimiter: str) -> None:
    assert formats._leef_value(value, delimiter) == leef_value_reference(value, delimiter)


def target(fmt: str, transport: str, profile: str) -> Target:
    options = TargetOptions(aggregation_window_seconds=0, heartbeat_seconds=0, profile=profile)
    return Target(
        1, "t", fmt, transport, "192.0.2.1", 514, "", "", options, dt.datetime.now(dt.UTC)
    )


EVENTS: list[tuple[str, int, dict[str, Any]]] = [
    (
        "threat_detected",
        4,
        {"id": 7, "virus": "Eicar|x=y", "object": "/tmp/a\nb", "action": "quarantine"},
    ),
    ("firewall_event", 2, {"event": "blocked", "protocol": "TCP", "source_address": "::1"}),
    ("component_started", 2, {"component": "scanner\u2028x"}),
]


@pytest.mark.parametrize("profile", ["garrison", "eset"])
@pytest.mark.parametrize("transport", ["tcp", "udp", "http"])
@pytest.mark.parametrize("fmt", ["eset-json", "leef", "leef2", "cef"])
def test_a_batch_is_encoded_as_its_records_one_by_one(
    fmt: str, transport: str, profile: str
) -> None:
    if profile == "eset" and fmt == "leef2":
        pytest.skip("the eset profile has no LEEF 2.0")
    chosen = target(fmt, transport, profile)
    batch = TargetEncoder(chosen)
    station = StationInfo("4C4C4544-0033", "ws-1", "10.1.2.3", "Linux", "Servers", "")
    when = dt.datetime(2026, 12, 3, 12, 0, 0, 123000, tzinfo=dt.UTC)
    records = [batch.record(t, sev, when, data, station) for t, sev, data in EVENTS]
    one_by_one = [encoder(chosen)(r) for r in records]
    assert batch.encode_batch(records) == one_by_one
    assert all(isinstance(m, bytes) and m for m in one_by_one)
