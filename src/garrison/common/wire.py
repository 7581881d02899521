"""Lenient readers for values as Armadito-family agents really send them.

Some antivirus backends wrap scalars in one-element arrays, send numbers and booleans as
strings, and build ISO-8601 durations with float division.  These helpers absorb those quirks
in one place and raise :class:`WireValueError` naming the field when a value is unusable.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

UUID_RE = re.compile(
    r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
)


class WireValueError(ValueError):
    """A value in an agent's request cannot be read; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def unwrap(value: Any) -> Any:
    """Take element 0 of a one-element array (``["232"]`` -> ``"232"``)."""
    while isinstance(value, list):
        if not value:
            return None
        value = value[0]
    return value


INT32_MAX = 2**31 - 1


def as_int(value: Any, field: str, *, required: bool = True, default: int | None = None) -> int:
    """An integer that fits the database's 32-bit columns."""
    number = _as_int(value, field, required=required, default=default)
    if not -INT32_MAX - 1 <= number <= INT32_MAX:
        raise WireValueError(field, f"is out of range: {number}")
    return number


def _as_int(value: Any, field: str, *, required: bool, default: int | None) -> int:
    value = unwrap(value)
    if value is None or value == "":
        if required and default is None:
            raise WireValueError(field, "is required")
        return default if default is not None else 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise WireValueError(field, "must be a finite number")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise WireValueError(field, f"must be an integer, got {value!r}") from None
            if number != number or number in (float("inf"), float("-inf")):
                raise WireValueError(field, "must be a finite number") from None
            return int(number)
    raise WireValueError(field, f"must be an integer, got {type(value).__name__}")


def as_optional_int(value: Any, field: str) -> int | None:
    value = unwrap(value)
    if value is None or value == "":
        return None
    return as_int(value, field)


def as_str(value: Any, field: str, *, required: bool = True, max_len: int = 4096) -> str:
    value = unwrap(value)
    if value is None:
        if required:
            raise WireValueError(field, "is required")
        return ""
    if isinstance(value, bool):
        value = "1" if value else "0"
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise WireValueError(field, f"must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise WireValueError(field, f"is longer than {max_len} characters")
    return value


def as_bool(value: Any, field: str) -> bool:
    value = unwrap(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise WireValueError(field, f"must be a boolean, got {value!r}")


def normalize_uuid(value: Any, field: str = "uuid") -> str:
    """Agents identify themselves by DMI uuid, in any case; Garrison stores it upper-case."""
    text = as_str(value, field).strip()
    if not UUID_RE.match(text):
        raise WireValueError(field, f"is not a uuid: {text[:64]!r}")
    return text.upper()


_ISO_DURATION_RE = re.compile(
    r"^P(?:(?P<d>[0-9.]+)D)?(?:T(?:(?P<h>[0-9.]+)H)?(?:(?P<m>[0-9.]+)M)?(?:(?P<s>[0-9.]+)S)?)?$"
)
_CLOCK_RE = re.compile(r"^(?P<h>\d+):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")


def parse_duration(value: Any, field: str = "duration") -> int:
    """Seconds from an Armadito scan duration.

    The agent builds ``PT{h}H{m}M{s}S`` with float division, so 90 s arrives as ``PT0H1.5M30S``
    and 5400 s as ``PT1.5H30M0S``: each component is truncated to an integer before summing.
    ``HH:MM:SS`` and plain seconds are accepted too.
    """
    value = unwrap(value)
    if value is None or value == "":
        return 0
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise WireValueError(field, "must not be negative")
        if value > INT32_MAX:
            raise WireValueError(field, "is too long")
        return int(value)
    if not isinstance(value, str):
        raise WireValueError(field, f"must be a duration string, got {type(value).__name__}")
    text = value.strip().upper()
    if text.isdigit():
        if len(text) > 10 or int(text) > INT32_MAX:
            raise WireValueError(field, "is too long")
        return int(text)
    match = _ISO_DURATION_RE.match(text)
    if match and text not in ("P", "PT"):
        try:
            parts = {k: int(float(v)) if v else 0 for k, v in match.groupdict().items()}
        except ValueError:
            raise WireValueError(field, f"is not a duration: {value[:64]!r}") from None
        total = parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
        if total > INT32_MAX:
            raise WireValueError(field, "is too long")
        return total
    match = _CLOCK_RE.match(text)
    if match:
        return int(match["h"]) * 3600 + int(match["m"]) * 60 + int(float(match["s"]))
    raise WireValueError(field, f"is not a duration: {value[:64]!r}")


def decode_mime_base64(text: str) -> str:
    """Failure messages arrive MIME base64 encoded with a newline every 76 characters."""
    compact = "".join(text.split())
    if not compact:
        return ""
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return text
    return raw.decode("utf-8", errors="replace")


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
