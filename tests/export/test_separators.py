"""No character a syslog receiver (or a line-based reader of an export file) splits a
message on reaches the output raw, in any format: U+2028/U+2029, C1 controls such as U+0085
(NEL), DEL and the C0 controls.  JSON keeps them losslessly as ``\\uXXXX`` escapes, CEF as
``\\uXXXX`` after its own escapes, LEEF (which has no escape) and the headers as spaces."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from garrison.server.export import formats, syslog
from garrison.server.export.mapping import Record

# Every character str.splitlines() breaks on, with the C1 and other controls receivers trip on.
SEPARATORS = "\t\u2028\u2029\u0085\u009b\u007f\x0b\x0c\x1c\x1d\x1e\x00\x1b\r\n"
NASTY = "before" + "".join(f"{c}x{i}" for i, c in enumerate(SEPARATORS)) + " after"
RAW = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")  # all but the tab


def record() -> Record:
    return Record(
        "Threat_Event",
        "threat_detected",
        "Warning",
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        {
            "event_type": "Threat_Event",
            "threat_name": NASTY,
            "processname": NASTY,
            "username": "alice",
        },
    )


def formatted(fmt: str) -> str:
    payload: str = formats.FORMATS[fmt](record())
    return payload


@pytest.mark.parametrize("fmt", sorted(formats.FORMATS))
def test_no_separator_reaches_the_payload(fmt: str) -> None:
    payload = formatted(fmt)
    assert RAW.search(payload) is None, (fmt, [c for c in payload if RAW.match(c)])
    if fmt == "leef2":  # LEEF 1.0's delimiter is the tab; CEF and JSON may hold one
        assert "\t" not in payload
    assert len(payload.splitlines()) == 1


@pytest.mark.parametrize("fmt", sorted(formats.FORMATS))
@pytest.mark.parametrize("kind", ["rfc5424", "rfc3164"])
@pytest.mark.parametrize("framing", ["newline", "octet", "none"])
def test_each_syslog_message_is_one_line(fmt: str, kind: str, framing: str) -> None:
    message = syslog.envelope(
        formatted(fmt),
        severity="Warning",
        time=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
        kind=kind,
        msgid="Threat_Event",
    )
    framed = syslog.frame(message, framing).decode("utf-8")
    body = framed[:-1] if framing == "newline" else framed
    assert RAW.search(body) is None
    assert len(body.splitlines()) == 1


def test_json_keeps_each_separator_losslessly() -> None:
    payload = formatted("eset-json")
    for char in SEPARATORS:
        if ord(char) >= 0x7F:  # orjson writes C0 controls with short escapes (\n, \f)
            assert f"\\u{ord(char):04x}" in payload, repr(char)
    assert json.loads(payload)["threat_name"] == NASTY


def test_cef_escapes_separators_unambiguously() -> None:
    payload = formatted("cef")
    assert "\\u2028x1" in payload
    assert "\\u0085x3" in payload
    # A literal backslash-u in a value is doubled, so it cannot be mistaken for an escape.
    literal = Record("A", "a", "Warning", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), {"x": "\\u2028"})
    assert "\\\\u2028" in formats.cef(literal)


@pytest.mark.parametrize("fmt", ["leef", "leef2"])
def test_leef_blanks_separators(fmt: str) -> None:
    payload = formatted(fmt)
    assert "before x0 x1 x2 x3" in payload
