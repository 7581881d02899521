"""Signature databases: ClamAV hash lists (``.hdb``: ``md5:size:name``; ``.hsb``:
``sha1-or-sha256:size:name[:flevel]``, size may be ``*``) and YARA rules (``.yar``/``.yara``).

The packaged database (``scan/db``) is always loaded; files an administrator pushed with an
UpdateSignatures job live in the state dir's ``signatures/`` and are loaded on top of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGED_DB = Path(__file__).parent / "db"
HASH_SUFFIXES = (".hdb", ".hsb")
YARA_SUFFIXES = (".yar", ".yara")
_HEX = set("0123456789abcdef")
ALGO_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256"}


class SignatureError(ValueError):
    """A signature file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class HashSignature:
    algo: str
    digest: str
    size: int | None
    name: str


def parse_hash_line(line: str, suffix: str) -> HashSignature | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    parts = text.split(":")
    if len(parts) < 3:
        raise SignatureError("expected hash:size:name")
    digest, size_text, name = parts[0].strip().lower(), parts[1].strip(), parts[2].strip()
    if not digest or set(digest) - _HEX:
        raise SignatureError(f"not a hex digest: {parts[0]!r}")
    algo = ALGO_BY_LENGTH.get(len(digest))
    if algo is None or (suffix == ".hdb" and algo != "md5"):
        raise SignatureError(f"unexpected digest length {len(digest)} in a {suffix} file")
    if size_text == "*":
        size = None
    elif size_text.isdigit():
        size = int(size_text)
    else:
        raise SignatureError(f"size must be a number or '*': {size_text!r}")
    if not name:
        raise SignatureError("the threat name is empty")
    return HashSignature(algo, digest, size, name)


def load_hash_file(path: Path) -> list[HashSignature]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SignatureError(f"{path}: {exc.strerror}") from None
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            sig = parse_hash_line(line, path.suffix.lower())
        except SignatureError as exc:
            raise SignatureError(f"{path}:{number}: {exc}") from None
        if sig is not None:
            out.append(sig)
    return out


def yara_available() -> bool:
    try:
        import yara  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


def compile_yara(paths: list[Path]) -> tuple[Any, int]:
    """Compiled rules and their count; raises SignatureError on a syntax error."""
    import yara  # type: ignore[import-not-found,unused-ignore]

    try:
        rules = yara.compile(filepaths={f"ns{i}": str(p) for i, p in enumerate(paths)})
    except yara.Error as exc:
        raise SignatureError(f"YARA: {exc}") from None
    return rules, sum(1 for _ in rules)


@dataclass
class SignatureDB:
    hashes: dict[str, dict[str, list[tuple[int | None, str]]]] = field(
        default_factory=lambda: {"md5": {}, "sha1": {}, "sha256": {}}
    )
    hash_count: int = 0
    yara_rules: Any = None
    yara_count: int = 0
    yara_skipped: str = ""
    version: str = ""
    date: int = 0  # epoch seconds of the newest database file
    files: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        return self.hash_count + self.yara_count

    def add(self, sig: HashSignature) -> None:
        self.hashes[sig.algo].setdefault(sig.digest, []).append((sig.size, sig.name))
        self.hash_count += 1

    def match_hashes(self, digests: dict[str, str], size: int) -> str | None:
        for algo in ("sha256", "sha1", "md5"):
            for sig_size, name in self.hashes[algo].get(digests[algo], ()):
                if sig_size is None or sig_size == size:
                    return name
        return None

    def match_yara(self, data: bytes) -> list[tuple[str, bool]]:
        """(threat name, suspicious) per matching rule."""
        if self.yara_rules is None:
            return []
        out = []
        for match in self.yara_rules.match(data=data, timeout=60):
            meta = match.meta or {}
            name = str(meta.get("threat_name") or f"YARA.{match.rule}")
            out.append((name, bool(meta.get("suspicious", False))))
        return out


def digests(data: bytes) -> dict[str, str]:
    return {
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "sha1": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.suffix.lower() in (*HASH_SUFFIXES, *YARA_SUFFIXES)
    )


def packaged_version() -> tuple[str, int]:
    try:
        meta = tomllib.loads((PACKAGED_DB / "VERSION.toml").read_text())
        date = dt.datetime.fromisoformat(str(meta["date"]).replace("Z", "+00:00"))
        return str(meta["version"]), int(date.timestamp())
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError):
        return "0", 0


def load_database(directories: Iterable[Path], use_yara: bool = True) -> SignatureDB:
    """Load every signature file; any broken file fails the whole load (SignatureError)."""
    db = SignatureDB()
    version, date = packaged_version()
    yara_files: list[Path] = []
    fingerprint = hashlib.sha256()
    local = False
    for directory in directories:
        for path in _files(directory):
            db.files.append(str(path))
            if directory != PACKAGED_DB:
                local = True
                try:
                    stat = path.stat()
                except OSError:
                    continue
                date = max(date, int(stat.st_mtime))
                fingerprint.update(path.name.encode() + path.read_bytes())
            if path.suffix.lower() in HASH_SUFFIXES:
                for sig in load_hash_file(path):
                    db.add(sig)
            else:
                yara_files.append(path)
    if yara_files and use_yara:
        if yara_available():
            db.yara_rules, db.yara_count = compile_yara(yara_files)
        else:
            db.yara_skipped = "yara-python is not installed: YARA rules skipped"
    db.version = f"{version}+{fingerprint.hexdigest()[:8]}" if local else version
    db.date = date
    return db


def validate_files(paths: Iterable[Path]) -> int:
    """Parse candidate files (before they replace the live ones); returns their record count."""
    count = 0
    yara_files = []
    for path in paths:
        suffix = path.suffix.lower()
        if suffix in HASH_SUFFIXES:
            count += len(load_hash_file(path))
        elif suffix in YARA_SUFFIXES:
            yara_files.append(path)
        else:
            raise SignatureError(f"{path.name}: not a .hdb, .hsb, .yar or .yara file")
    if yara_files and yara_available():
        count += compile_yara(yara_files)[1]
    return count
