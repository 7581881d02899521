"""ClamAV body signatures (``.ndb``), evaluated by translating each one to a YARA rule.

A line is ``MalwareName:TargetType:Offset:HexSignature[:MinFlevel[:MaxFlevel]]``.  What is
translated (ClamAV's signature format → YARA):

* hex bytes ``aa``; ``??`` any byte; nibble wildcards ``a?`` and ``?a``;
* ``*`` any number of bytes (``[-]``); ``{n}`` exactly n; ``{-n}`` at most n; ``{n-}`` at least
  n; ``{n-m}``; ClamAV's anchored ``[n-m]``;
* alternatives ``(aa|bbcc|d?)``, and a negated single byte ``!(aa)`` (YARA's ``~AA``);
* offsets ``*`` (anywhere), ``n`` (at n), ``n,m`` (starting between n and n+m), ``EOF-n`` and
  ``EOF-n,m`` (from the end of the file);
* target types whose ClamAV meaning is "the file's raw bytes": 0 (any file), 1 (PE), 6 (ELF) and
  9 (Mach-O), the last three guarded by the file's magic.

Everything else is skipped, never approximated, and counted by reason: the other target types
(ClamAV matches those against normalised HTML or text, decoded mail, OLE2 streams, …),
offsets relative to a PE's entry point or sections (``EP+n``, ``Sx+n``, ``SL+n``, ``SEx``…),
the boundary markers ``(B)``/``(L)``/``(W)``, negated multi-byte alternatives, and anything YARA
itself refuses to compile.  The functionality-level fields are not used.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NDB_SUFFIX = ".ndb"
TARGETS = {
    0: "any file",
    1: "PE",
    2: "OLE2",
    3: "normalised HTML",
    4: "mail",
    5: "graphics",
    6: "ELF",
    7: "normalised text",
    8: "unused",
    9: "Mach-O",
    10: "PDF",
    11: "Flash",
    12: "Java class",
}
# The file-type guard of each target type Garrison evaluates.
GUARDS = {
    0: "",
    1: "uint16(0) == 0x5A4D and uint32(uint32(0x3C)) == 0x00004550 and ",
    6: "uint32(0) == 0x464C457F and ",
    9: "(uint32(0) == 0xFEEDFACE or uint32(0) == 0xFEEDFACF or uint32(0) == 0xCEFAEDFE"
    " or uint32(0) == 0xCFFAEDFE) and ",
}
_BYTE = re.compile(r"[0-9a-f?]{2}")
_RANGE = re.compile(r"(\d*)(-?)(\d*)")
_LINE_ERROR = re.compile(r"line (\d+)")


class NdbError(ValueError):
    """A line that is not an .ndb signature at all (the file is broken)."""


class Unsupported(Exception):
    """A well-formed signature Garrison cannot evaluate; ``reason`` is what it is counted as."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class NdbSignature:
    name: str
    target: int
    offset: str
    hexsig: str


def parse_line(line: str) -> NdbSignature | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    parts = text.split(":")
    if len(parts) < 4 or len(parts) > 6:
        raise NdbError("expected MalwareName:TargetType:Offset:HexSignature[:min[:max]]")
    name, target, offset, hexsig = (p.strip() for p in parts[:4])
    if not name:
        raise NdbError("the malware name is empty")
    if not target.isdigit():
        raise NdbError(f"the target type is not a number: {target!r}")
    if not offset or not hexsig:
        raise NdbError("the offset or the hex signature is empty")
    for level in parts[4:]:
        if level.strip() and not level.strip().isdigit():
            raise NdbError(f"the functionality level is not a number: {level!r}")
    return NdbSignature(name, int(target), offset, hexsig)


def _jump(body: str) -> str:
    match = _RANGE.fullmatch(body)
    if match is None or (not match[1] and not match[3]):
        raise NdbError(f"bad range {{{body}}}")
    low, dash, high = match[1], match[2], match[3]
    if not dash:
        return f"[{int(low)}]"
    if not low:
        return f"[0-{int(high)}]"
    if not high:
        return f"[{int(low)}-]"
    if int(high) < int(low):
        raise NdbError(f"bad range {{{body}}}")
    return f"[{int(low)}-{int(high)}]"


def _bytes(text: str, what: str) -> list[str]:
    if not text or len(text) % 2:
        raise NdbError(f"{what} is not hex pairs: {text!r}")
    out = []
    for i in range(0, len(text), 2):
        pair = text[i : i + 2]
        if not _BYTE.fullmatch(pair):
            raise NdbError(f"{what} is not hex pairs: {text!r}")
        out.append(pair.upper())
    return out


def translate_hex(hexsig: str) -> str:
    """The body of a YARA hex string for a ClamAV hex signature."""
    text = hexsig.strip().lower()
    tokens: list[str] = []
    fixed = False  # a YARA hex string may neither start nor end with a jump
    i = 0
    while i < len(text):
        char = text[i]
        if char == "*":
            tokens.append("[-]")
            i += 1
        elif char in "{[":
            close = text.find("}" if char == "{" else "]", i)
            if close < 0:
                raise NdbError(f"unclosed {char} in the hex signature")
            jump = _jump(text[i + 1 : close])
            if jump not in ("[0]", "[0-0]"):  # zero bytes: nothing (YARA refuses [0])
                tokens.append(jump)
            i = close + 1
        elif char == "!" or char == "(":
            negated = char == "!"
            if negated:
                if text[i + 1 : i + 2] != "(":
                    raise NdbError("'!' must be followed by '('")
                i += 1
            close = text.find(")", i)
            if close < 0:
                raise NdbError("unclosed ( in the hex signature")
            inner = text[i + 1 : close]
            if inner.upper() in ("B", "L", "W"):
                raise Unsupported(f"boundary marker ({inner.upper()})")
            options = inner.split("|")
            if negated:
                if len(options) != 1 or len(options[0]) != 2 or "?" in options[0]:
                    raise Unsupported("negated alternatives")
                tokens.append("~" + _bytes(options[0], "a negated byte")[0])
                fixed = True
            else:
                alts = [" ".join(_bytes(opt, "an alternative")) for opt in options]
                if any(not alt for alt in alts):
                    raise NdbError("an empty alternative")
                tokens.append("( " + " | ".join(alts) + " )")
                fixed = True
            i = close + 1
        else:
            end = i
            while end < len(text) and text[end] in "0123456789abcdef?":
                end += 1
            if end == i:
                raise NdbError(f"unexpected {char!r} in the hex signature")
            tokens.extend(_bytes(text[i:end], "the hex signature"))
            fixed = True
            i = end
    if not fixed:
        raise NdbError("the hex signature has no bytes")
    if tokens[0].startswith("[") or tokens[-1].startswith("["):
        raise Unsupported("signature starting or ending with a wildcard range")
    return " ".join(tokens)


def translate_offset(offset: str) -> str:
    """The YARA condition on ``$a`` for a ClamAV offset."""
    text = offset.strip()
    if text == "*":
        return "$a"
    base, _, shift = text.partition(",")
    if shift and not shift.isdigit():
        raise NdbError(f"bad offset {offset!r}")
    if base.isdigit():
        start = base
    elif base.startswith("EOF-") and base[4:].isdigit():
        start = f"filesize - {int(base[4:])}"
    elif base.startswith(("EP", "S", "VI", "$")):
        raise Unsupported("offset relative to the entry point or a section")
    else:
        raise NdbError(f"bad offset {offset!r}")
    if shift:
        return f"$a in ({start}..{start} + {int(shift)})"
    return f"$a at {start}"


def _quote(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= ord(char) < 127:
            out.append(char)
        else:
            out.append("".join(f"\\x{b:02x}" for b in char.encode("utf-8")))
    return '"' + "".join(out) + '"'


def translate(sig: NdbSignature, index: int) -> str:
    """One YARA rule, on one line; raises Unsupported or NdbError."""
    if sig.target not in GUARDS:
        name = TARGETS.get(sig.target, "unknown")
        raise Unsupported(f"target type {sig.target} ({name})")
    condition = GUARDS[sig.target] + translate_offset(sig.offset)
    return (
        f"rule ndb_{index} {{ meta: threat_name = {_quote(sig.name)} "
        f"strings: $a = {{ {translate_hex(sig.hexsig)} }} condition: {condition} }}"
    )


@dataclass
class NdbRules:
    """The compiled .ndb signatures, their count and what was skipped (reason → count)."""

    rules: Any = None
    count: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def match(self, data: bytes) -> list[str]:
        if self.rules is None:
            return []
        return [
            str((m.meta or {}).get("threat_name") or m.rule)
            for m in self.rules.match(data=data, timeout=60)
        ]


def _compile(sources: list[str], skipped: Counter[str]) -> tuple[Any, int]:
    """Compile, dropping (and counting) each rule YARA refuses, one at a time."""
    import yara  # type: ignore[import-not-found,unused-ignore]

    live = list(sources)
    while live:
        try:
            return yara.compile(source="\n".join(live)), len(live)
        except yara.SyntaxError as exc:
            found = _LINE_ERROR.search(str(exc))
            if found is None or not 1 <= int(found[1]) <= len(live):
                raise NdbError(f"YARA: {exc}") from None
            del live[int(found[1]) - 1]
            skipped["ndb refused by YARA"] += 1
    return None, 0


def load(paths: Iterable[Path]) -> NdbRules:
    """Parse and compile every .ndb file; a malformed line fails the load (NdbError naming the
    file and line), a signature Garrison cannot evaluate is skipped and counted."""
    out = NdbRules()
    sources: list[str] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise NdbError(f"{path}: {exc.strerror}") from None
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                sig = parse_line(line)
                if sig is None:
                    continue
                sources.append(translate(sig, len(sources)))
            except Unsupported as exc:
                out.skipped[f"ndb {exc.reason}"] += 1
            except NdbError as exc:
                raise NdbError(f"{path}:{number}: {exc}") from None
    if sources:
        out.rules, out.count = _compile(sources, out.skipped)
    return out


def count(path: Path) -> tuple[int, int]:
    """(evaluable, skipped) signatures of one file, without compiling it."""
    good = bad = 0
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        try:
            sig = parse_line(line)
            if sig is not None:
                translate(sig, 0)
                good += 1
        except Unsupported:
            bad += 1
        except NdbError as exc:
            raise NdbError(f"{path}:{number}: {exc}") from None
    return good, bad
