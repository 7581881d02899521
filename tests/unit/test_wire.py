"""The lenient readers of garrison.common.wire, one quirk at a time."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from garrison.common.wire import (
    WireValueError,
    as_bool,
    as_int,
    as_optional_int,
    as_str,
    b64,
    decode_mime_base64,
    normalize_uuid,
    parse_duration,
    unwrap,
)

# -- unwrap -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["232"], "232"),
        ([["232"]], "232"),
        (["a", "b"], "a"),
        ([], None),
        ([[]], None),
        ("232", "232"),
        (232, 232),
        (None, None),
        ({"a": 1}, {"a": 1}),
    ],
)
def test_unwrap(value: Any, expected: Any) -> None:
    assert unwrap(value) == expected


# -- as_int -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, 42),
        ("42", 42),
        (" 42 ", 42),
        (["232"], 232),
        ([232], 232),
        ("-3", -3),
        ("4.9", 4),
        (4.9, 4),
        (True, 1),
        (False, 0),
        ("1500000000", 1500000000),
    ],
)
def test_as_int_reads_numbers_as_agents_send_them(value: Any, expected: int) -> None:
    result = as_int(value, "task.obj.scanned_count")
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("many", "must be an integer, got 'many'"),
        ({"n": 1}, "must be an integer, got dict"),
        ("nan", "must be a finite number"),
        ("inf", "must be a finite number"),
        (float("nan"), "must be a finite number"),
        (float("-inf"), "must be a finite number"),
        (None, "is required"),
        ("", "is required"),
        ([], "is required"),
    ],
)
def test_as_int_refuses_naming_the_field(value: Any, problem: str) -> None:
    with pytest.raises(WireValueError) as caught:
        as_int(value, "task.obj.scanned_count")
    assert caught.value.field == "task.obj.scanned_count"
    assert caught.value.problem == problem
    assert str(caught.value) == f"task.obj.scanned_count: {problem}"


def test_as_int_defaults_when_not_required() -> None:
    assert as_int(None, "x", required=False) == 0
    assert as_int("", "x", required=False, default=100) == 100
    assert as_int([], "x", default=7) == 7
    assert as_int("5", "x", required=False, default=100) == 5


def test_as_optional_int() -> None:
    assert as_optional_int(None, "job_id") is None
    assert as_optional_int("", "job_id") is None
    assert as_optional_int([], "job_id") is None
    assert as_optional_int(["7"], "job_id") == 7
    with pytest.raises(WireValueError, match=r"^job_id: must be an integer"):
        as_optional_int("seven", "job_id")


def test_wire_value_error_is_a_value_error() -> None:
    assert issubclass(WireValueError, ValueError)


# -- as_str -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("clamav", "clamav"),
        (["clamav"], "clamav"),
        (42, "42"),
        (1.5, "1.5"),
        (True, "1"),
        (False, "0"),
        ("", ""),
    ],
)
def test_as_str(value: Any, expected: str) -> None:
    assert as_str(value, "task.obj.name") == expected


def test_as_str_missing() -> None:
    assert as_str(None, "task.obj.action", required=False) == ""
    with pytest.raises(WireValueError) as caught:
        as_str(None, "task.obj.name")
    assert (caught.value.field, caught.value.problem) == ("task.obj.name", "is required")


def test_as_str_refuses_objects_and_long_text() -> None:
    with pytest.raises(WireValueError) as caught:
        as_str({"a": 1}, "task.obj.name")
    assert str(caught.value) == "task.obj.name: must be a string, got dict"
    assert as_str("x" * 10, "f", max_len=10) == "x" * 10
    with pytest.raises(WireValueError) as caught:
        as_str("x" * 11, "f", max_len=10)
    assert str(caught.value) == "f: is longer than 10 characters"


# -- as_bool ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        (2, True),
        ("1", True),
        ("0", False),
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("false", False),
        ("no", False),
        ("off", False),
        ("", False),
        (["1"], True),
        (["false"], False),
    ],
)
def test_as_bool(value: Any, expected: bool) -> None:
    assert as_bool(value, "enabled") is expected


@pytest.mark.parametrize("value", ["maybe", "2", None, 1.0, {"x": 1}])
def test_as_bool_refuses(value: Any) -> None:
    with pytest.raises(WireValueError) as caught:
        as_bool(value, "task.obj.enabled")
    assert caught.value.field == "task.obj.enabled"
    assert caught.value.problem.startswith("must be a boolean, got ")


# -- normalize_uuid ---------------------------------------------------------------------------


def test_normalize_uuid_stores_upper_case() -> None:
    upper = "4C4C4544-0033-4A10-8051-FFFFFFFFFFFF"
    assert normalize_uuid(upper) == upper
    assert normalize_uuid(upper.lower()) == upper
    assert normalize_uuid("4c4C4544-0033-4a10-8051-fFFFffffFFFF") == upper
    assert normalize_uuid(f"  {upper.lower()}\n") == upper
    assert normalize_uuid([upper.lower()]) == upper


@pytest.mark.parametrize(
    "value",
    [
        "not-a-uuid",
        "4C4C4544003340A108051FFFFFFFFFFFF",
        "4C4C4544-0033-4A10-8051-FFFFFFFFFFF",
        "4C4C4544-0033-4A10-8051-FFFFFFFFFFFFF",
        "4C4C4544-0033-4A10-8051-FFFFFFFFFFFG",
        "{4C4C4544-0033-4A10-8051-FFFFFFFFFFFF}",
        "",
    ],
)
def test_normalize_uuid_refuses(value: str) -> None:
    with pytest.raises(WireValueError) as caught:
        normalize_uuid(value)
    assert caught.value.field == "uuid"
    assert caught.value.problem == f"is not a uuid: {value!r}"


def test_normalize_uuid_names_its_field() -> None:
    with pytest.raises(WireValueError) as caught:
        normalize_uuid(None, "agent.uuid")
    assert str(caught.value) == "agent.uuid: is required"


# -- parse_duration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("PT0H0M0S", 0),
        ("PT0H0M42S", 42),
        ("PT0H1.5M30S", 90),  # 90 s as the agent builds it (float division)
        ("PT1.5H30M0S", 5400),  # 5400 s
        ("PT0H0M59.999S", 59),
        ("PT1H1M1S", 3661),
        ("PT2H", 7200),
        ("PT5M", 300),
        ("PT7S", 7),
        ("P1DT0H0M0S", 86400),
        ("P1D", 86400),
        ("pt0h1.5m30s", 90),
        (" PT0H1.5M30S ", 90),
        ("00:01:30", 90),
        ("01:30:00", 5400),
        ("1:02:03", 3723),
        ("100:00:00", 360000),
        ("00:00:01.75", 1),
        ("90", 90),
        (90, 90),
        (90.9, 90),
        (["PT0H1.5M30S"], 90),
        (None, 0),
        ("", 0),
        ([], 0),
    ],
)
def test_parse_duration(value: Any, seconds: int) -> None:
    result = parse_duration(value, "task.obj.duration")
    assert result == seconds
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("soon", "is not a duration: 'soon'"),
        ("P", "is not a duration: 'P'"),
        ("PT", "is not a duration: 'PT'"),
        ("PT-5S", "is not a duration: 'PT-5S'"),
        ("PT5X", "is not a duration: 'PT5X'"),
        ("1:2", "is not a duration: '1:2'"),
        ("1:2:3:4", "is not a duration: '1:2:3:4'"),
        ("-90", "is not a duration: '-90'"),
        (-1, "must not be negative"),
        (-0.5, "must not be negative"),
        ({"s": 1}, "must be a duration string, got dict"),
        (True, "must be a duration string, got bool"),
    ],
)
def test_parse_duration_refuses_naming_the_field(value: Any, problem: str) -> None:
    with pytest.raises(WireValueError) as caught:
        parse_duration(value, "task.obj.duration")
    assert caught.value.field == "task.obj.duration"
    assert caught.value.problem == problem
    assert str(caught.value) == f"task.obj.duration: {problem}"


def test_parse_duration_default_field_name() -> None:
    with pytest.raises(WireValueError) as caught:
        parse_duration("soon")
    assert caught.value.field == "duration"


def test_parse_duration_quotes_at_most_64_characters_of_the_value() -> None:
    with pytest.raises(WireValueError) as caught:
        parse_duration("x" * 500, "d")
    assert caught.value.problem == f"is not a duration: {'x' * 64!r}"


@pytest.mark.parametrize("value", ["PT1.2.3S", "PT.S", "PT0H..M0S", "P.D"])
def test_parse_duration_malformed_number_is_a_wire_value_error(value: str) -> None:
    with pytest.raises(WireValueError) as caught:
        parse_duration(value, "task.obj.duration")
    assert caught.value.field == "task.obj.duration"
    assert caught.value.problem == f"is not a duration: {value!r}"


# -- decode_mime_base64 -----------------------------------------------------------------------


def test_decode_mime_base64_with_a_newline_every_76_characters() -> None:
    text = "Scan failed: cannot open /tmp/scanme/ü (Permission denied). " * 5
    encoded = base64.encodebytes(text.encode("utf-8")).decode("ascii")
    assert encoded.count("\n") >= 5
    assert all(len(line) == 76 for line in encoded.split("\n")[:-2])
    assert decode_mime_base64(encoded) == text


def test_decode_mime_base64_with_crlf_and_spaces() -> None:
    encoded = base64.encodebytes(("engine error " * 10).encode()).decode().replace("\n", "\r\n")
    assert decode_mime_base64("  " + encoded) == "engine error " * 10


def test_decode_mime_base64_single_line() -> None:
    assert decode_mime_base64("ZW5naW5lIGNyYXNoZWQ=") == "engine crashed"
    assert decode_mime_base64("ZW5naW5lIGNyYXNoZWQ=\n") == "engine crashed"


def test_decode_mime_base64_empty() -> None:
    assert decode_mime_base64("") == ""
    assert decode_mime_base64(" \n ") == ""


def test_decode_mime_base64_leaves_text_that_is_not_base64() -> None:
    assert decode_mime_base64("scan failed!") == "scan failed!"
    assert decode_mime_base64("abc") == "abc"  # wrong padding


def test_decode_mime_base64_replaces_invalid_utf8() -> None:
    assert decode_mime_base64(base64.b64encode(b"bad \xff byte").decode()) == "bad \ufffd byte"


def test_b64_is_the_inverse() -> None:
    assert b64("/tmp/scanme") == "L3RtcC9zY2FubWU="
    assert b64("") == ""
    assert decode_mime_base64(b64("/home/Téléchargements")) == "/home/Téléchargements"
