"""The rule set kinds, their line formats and their validation (docs/content.md, "Formats").

Every validator takes the content as text and returns a :class:`Checked` (record count,
bundle file extension, facts) or raises :class:`FormatError` naming the line.  Pure: no
database, so the agent-side helpers and the tests can reason about the same rules.

Line-oriented kinds (hashes, ioc, blocklist, devices, clamav-body) are split on ``\\n`` (a
``\\r`` before it is refused: the agent splits the same way, and a line delta must rebuild
the exact bytes).  In the Garrison formats (ioc, blocklist, devices) an empty line or one
starting with ``#`` is a comment; the ClamAV formats (hashes, clamav-body) have none, as
in ClamAV itself.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yara  # type: ignore[import-not-found,unused-ignore]

from garrison.common import devices

KINDS = ("yara", "hashes", "ioc", "blocklist", "script", "devices", "clamav-body")
# Kinds an agent may receive as a line delta (CONTENT-WIRE.md).
LINE_DELTA_KINDS = frozenset({"hashes", "ioc", "blocklist", "clamav-body"})
NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# The most a rule set's content may hold (the admin API's body limit usually bites first).
MAX_CONTENT_BYTES = 256 * 1024 * 1024
# YARA budgets: compiled rules larger than this are refused (memory), and a rule the
# compiler warns "may slow down scanning" is refused (time); a compile slower than
# YARA_COMPILE_SECONDS is refused too.
YARA_COMPILED_MAX_BYTES = 64 * 1024 * 1024
YARA_COMPILE_SECONDS = 30.0
SLOW_WARNING = "may slow down scanning"

HASH_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_SIZE = re.compile(r"^(\*|[0-9]{1,19})$")
_FLEVEL = re.compile(r"^[0-9]{1,5}$")
_NDB_OFFSET = re.compile(
    r"^(\*|[0-9]+|EP[+-][0-9]+|S[0-9]+[+-][0-9]+|SE[0-9]+|SL\+[0-9]+|EOF-[0-9]+)(,[0-9]+)?$"
)
_NDB_SIG = re.compile(r"^[0-9a-fA-F?*{}\-()|\[\]!~,;0-9LBWl:]+$")
_INTERPRETERS = ("sh", "bash", "python3", "python", "perl", "powershell", "pwsh", "cmd", "lua")

EXTENSIONS = {
    "yara": "yar",
    "ioc": "ioc",
    "blocklist": "blk",
    "script": "script",
    "devices": "dev",
    "clamav-body": "ndb",
}


class FormatError(ValueError):
    """Content that does not validate; ``line`` (1-based) when one line is at fault."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.message = str(self)
        self.line = line


@dataclass(frozen=True)
class Checked:
    records: int
    ext: str
    meta: dict[str, Any] = field(default_factory=dict)


def file_name(name: str, ext: str) -> str:
    return f"{name}.{ext}"


def lines(content: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of a line-oriented content; a final newline ends the last line."""
    parts = content.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    for number, text in enumerate(parts, start=1):
        if text.endswith("\r"):
            raise FormatError("ends with a carriage return (use \\n line ends)", number)
        yield number, text


def _records(content: str, parse: Callable[[str, int], None], comments: bool) -> int:
    count = 0
    for number, text in lines(content):
        if comments and (not text.strip() or text.lstrip().startswith("#")):
            continue
        if not text:
            raise FormatError("empty line", number)
        parse(text, number)
        count += 1
    return count


def hash_type(value: str, number: int) -> str:
    found = HASH_LENGTHS.get(len(value))
    if found is None or not _HEX.match(value):
        raise FormatError(
            f"{value[:80]!r} is not an MD5, SHA-1 or SHA-256 hash (32, 40 or 64 hex digits)",
            number,
        )
    return found


# -- hashes (ClamAV .hdb / .hsb) -------------------------------------------------------------


def check_hashes(content: str) -> Checked:
    """``hash:size:name[:flevel]`` lines; MD5 lines (.hdb) and SHA lines (.hsb) not mixed."""
    seen: set[str] = set()

    def parse(text: str, number: int) -> None:
        parts = text.split(":")
        if len(parts) not in (3, 4):
            raise FormatError("expected hash:size:name (ClamAV .hdb/.hsb)", number)
        digest, size, name = parts[0], parts[1], parts[2]
        seen.add(hash_type(digest, number))
        if not _SIZE.match(size):
            raise FormatError(f"size {size[:40]!r} must be a number of bytes or *", number)
        if not name.strip():
            raise FormatError("the signature name is empty", number)
        if len(parts) == 4 and not _FLEVEL.match(parts[3]):
            raise FormatError("the minimum engine level must be a number", number)
        if "md5" in seen and len(seen) > 1:
            raise FormatError(
                "MD5 lines (.hdb) and SHA-1/SHA-256 lines (.hsb) cannot share a rule set", number
            )

    records = _records(content, parse, comments=False)
    if not records:
        raise FormatError("a hash list needs at least one line")
    ext = "hdb" if seen == {"md5"} else "hsb"
    return Checked(records, ext, {"hash_types": sorted(seen)})


# -- ioc and blocklist -------------------------------------------------------------------------


def _indicator(text: str, number: int) -> str:
    """``hash:<hex>``, ``path:<absolute path or glob>`` or ``name:<file name or glob>``:
    the value is the rest of the line; returns the type."""
    kind, sep, value = text.partition(":")
    if not sep:
        raise FormatError("expected TYPE:VALUE with TYPE hash, path or name", number)
    if kind == "hash":
        hash_type(value, number)
    elif kind == "path":
        if not (value.startswith("/") or re.match(r"^[A-Za-z]:\\", value)):
            raise FormatError("a path indicator must be absolute", number)
    elif kind == "name":
        if not value or "/" in value or "\\" in value:
            raise FormatError("a name indicator is a file name (no directory)", number)
    else:
        raise FormatError(f"unknown indicator type {kind[:40]!r} (hash, path or name)", number)
    return kind


def _check_indicators(content: str, what: str, may_be_empty: bool = False) -> Checked:
    counts: dict[str, int] = {}

    def parse(text: str, number: int) -> None:
        kind = _indicator(text, number)
        counts[kind] = counts.get(kind, 0) + 1

    records = _records(content, parse, comments=True)
    if not records and not may_be_empty:
        raise FormatError(f"{what} needs at least one indicator")
    return Checked(records, EXTENSIONS["ioc" if what == "an IOC list" else "blocklist"], counts)


def check_ioc(content: str) -> Checked:
    return _check_indicators(content, "an IOC list")


def check_blocklist(content: str) -> Checked:
    # Comments only is an empty block list: lifting the last entry lifts every block (the
    # agent then marks nothing), which an "at least one" rule would make impossible.
    return _check_indicators(content, "a block list", may_be_empty=True)


# -- devices ---------------------------------------------------------------------------------


def check_devices(content: str) -> Checked:
    """``allow|block CLASS VENDOR:PRODUCT [SERIAL]`` (CLASS ``usb`` or a USB class of
    common/devices.py; 4 hex digits or ``*`` each); the first matching line wins on the
    agent."""
    actions: dict[str, int] = {}

    def parse(text: str, number: int) -> None:
        try:
            rule = devices.parse_rule(text)
        except devices.RuleError as exc:
            raise FormatError(str(exc), number) from None
        actions[rule.action] = actions.get(rule.action, 0) + 1

    # Comments only is no rule: every device allowed (lifting the fleet's last rule must be
    # possible, as for the block list).
    records = _records(content, parse, comments=True)
    return Checked(records, EXTENSIONS["devices"], actions)


# -- clamav-body (.ndb) ----------------------------------------------------------------------


def check_ndb(content: str) -> Checked:
    """``name:target:offset:hexsig[:minfl[:maxfl]]``: the shape only."""

    def parse(text: str, number: int) -> None:
        parts = text.split(":")
        if not 4 <= len(parts) <= 6:
            raise FormatError("expected name:target:offset:hexsig (ClamAV .ndb)", number)
        name, target, offset, sig = parts[:4]
        if not name.strip():
            raise FormatError("the signature name is empty", number)
        if not target.isdigit() or not 0 <= int(target) <= 14:
            raise FormatError(f"target {target[:20]!r} must be a number from 0 to 14", number)
        if not _NDB_OFFSET.match(offset):
            raise FormatError(f"offset {offset[:40]!r} is not a ClamAV offset", number)
        if len(sig) < 2 or not _NDB_SIG.match(sig):
            raise FormatError("the signature must be hex with ClamAV wildcards", number)
        for level in parts[4:]:
            if level and not _FLEVEL.match(level):
                raise FormatError("the engine levels must be numbers", number)

    records = _records(content, parse, comments=False)
    if not records:
        raise FormatError("a body signature list needs at least one line")
    return Checked(records, EXTENSIONS["clamav-body"])


# -- script ----------------------------------------------------------------------------------


def check_script(content: str) -> Checked:
    """Any text, starting with a ``#!`` line naming its interpreter (recorded as metadata)."""
    first = content.split("\n", 1)[0].rstrip("\r")
    if not first.startswith("#!"):
        raise FormatError("a script starts with a #! line naming its interpreter", 1)
    words = first[2:].split()
    if not words:
        raise FormatError("the #! line names no interpreter", 1)
    program = words[0].rsplit("/", 1)[-1]
    if program == "env" and len(words) > 1:
        program = words[1]
    if program not in _INTERPRETERS:
        raise FormatError(
            f"interpreter {program[:40]!r} is not one of {', '.join(_INTERPRETERS)}", 1
        )
    return Checked(1, EXTENSIONS["script"], {"interpreter": program})


# -- yara ------------------------------------------------------------------------------------


def check_yara(content: str) -> Checked:
    """Compiles with yara-python (includes disabled: a rule must not read the server's
    files); the compiler's message names the line."""
    started = time.monotonic()
    try:
        rules = yara.compile(source=content, includes=False)
    except yara.SyntaxError as exc:
        raise FormatError(f"does not compile: {exc}") from None
    except yara.Error as exc:
        raise FormatError(f"does not compile: {exc}") from None
    seconds = time.monotonic() - started
    warnings = [str(w) for w in getattr(rules, "warnings", [])]
    slow = [w for w in warnings if SLOW_WARNING in w]
    if slow:
        raise FormatError(f"over the scan time budget: {slow[0]}")
    if seconds > YARA_COMPILE_SECONDS:
        raise FormatError(f"over the compile time budget ({seconds:.1f} s)")
    buffer = io.BytesIO()
    rules.save(file=buffer)
    compiled = len(buffer.getvalue())
    if compiled > YARA_COMPILED_MAX_BYTES:
        raise FormatError(
            f"over the compiled size budget: {compiled} bytes (at most {YARA_COMPILED_MAX_BYTES})"
        )
    names = [rule.identifier for rule in rules]
    if not names:
        raise FormatError("holds no rule")
    return Checked(
        len(names), EXTENSIONS["yara"], {"compiled_bytes": compiled, "warnings": warnings}
    )


CHECKERS: dict[str, Callable[[str], Checked]] = {
    "yara": check_yara,
    "hashes": check_hashes,
    "ioc": check_ioc,
    "blocklist": check_blocklist,
    "script": check_script,
    "devices": check_devices,
    "clamav-body": check_ndb,
}


def check(kind: str, content: str) -> Checked:
    """Validate ``content`` as ``kind``; FormatError says what and where."""
    checker = CHECKERS.get(kind)
    if checker is None:
        raise FormatError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    if "\x00" in content:
        raise FormatError("content must not contain NUL characters")
    if len(content.encode("utf-8")) > MAX_CONTENT_BYTES:
        raise FormatError(f"content is larger than {MAX_CONTENT_BYTES} bytes")
    if not content.strip():
        raise FormatError("content is empty")
    return checker(content)
