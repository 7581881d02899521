"""Signature databases: ClamAV hash lists (``.hdb``: ``md5:size:name``; ``.hsb``:
``sha1-or-sha256:size:name[:flevel]``, size may be ``*``), ClamAV body signatures (``.ndb``,
translated to YARA by :mod:`.ndb`) and YARA rules (``.yar``/``.yara``).

Hash lists are held lean (a million SHA-256 records in well under 100 MB, see
docs/clamav.md): per algorithm, the digests sorted in one buffer and looked up by binary
search, the sizes in an array and the names in one blob.

The packaged database (``scan/db``) is always loaded; files an administrator pushed with an
UpdateSignatures job live in the state dir's ``signatures/`` and are loaded on top of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from garrison.agent.scan import ndb
from garrison.agent.scan.blocklist import BLOCK_SUFFIXES, BlockList, load_into
from garrison.agent.scan.hashtable import ALGO_BY_LENGTH, HashTable, SignatureError

__all__ = ["ALGO_BY_LENGTH", "HashTable", "SignatureError"]  # their home before hashtable.py

log = logging.getLogger("garrison.agent")

PACKAGED_DB = Path(__file__).parent / "db"
HASH_SUFFIXES = (".hdb", ".hsb")
NDB_SUFFIXES = (ndb.NDB_SUFFIX,)
YARA_SUFFIXES = (".yar", ".yara")
_HEX = set("0123456789abcdef")


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


def _load_hash_file_into(tables: dict[str, HashTable], path: Path) -> int:
    """:func:`load_hash_file`'s rules, without an object per line (a million lines load in a
    few seconds); a line the fast path does not take is parsed by :func:`parse_hash_line`,
    which names what is wrong with it."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise SignatureError(f"{path}: {exc.strerror}") from None
    with handle:
        return _read_hash_lines(tables, path, handle)


def _read_hash_lines(tables: dict[str, HashTable], path: Path, handle: Iterable[bytes]) -> int:
    suffix = path.suffix.lower()
    by_length = (
        {32: tables["md5"]}
        if suffix == ".hdb"
        else {32: tables["md5"], 40: tables["sha1"], 64: tables["sha256"]}
    )
    count = 0
    for number, raw in enumerate(handle, start=1):
        line = raw.strip()
        if not line or line[:1] == b"#":
            continue
        parts = line.split(b":", 3)
        if len(parts) >= 3:
            text, size_text, name = parts[0].strip(), parts[1].strip(), parts[2].strip()
            table = by_length.get(len(text))
            if table is not None and name and (size_text == b"*" or size_text.isdigit()):
                try:
                    digest = bytes.fromhex(text.decode("ascii"))
                except (UnicodeDecodeError, ValueError):
                    digest = b""
                if len(digest) * 2 == len(text):
                    table.append(digest, -1 if size_text == b"*" else int(size_text), name)
                    count += 1
                    continue
        try:
            sig = parse_hash_line(line.decode("utf-8", "replace"), suffix)
        except SignatureError as exc:
            raise SignatureError(f"{path}:{number}: {exc}") from None
        if sig is not None:
            tables[sig.algo].append(
                bytes.fromhex(sig.digest), -1 if sig.size is None else sig.size, sig.name.encode()
            )
            count += 1
    return count


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


def compile_yara_source(source: str) -> Any:
    """Rules from source text (a FindFile hunt's question), ``include`` disabled: a rule sent
    by the server may not read the station's files.  SignatureError on a syntax error or when
    yara-python is missing."""
    if not yara_available():
        raise SignatureError("yara-python is not installed on this station")
    import yara  # type: ignore[import-not-found,unused-ignore]

    try:
        return yara.compile(source=source, includes=False)
    except yara.Error as exc:
        raise SignatureError(f"YARA: {exc}") from None


@dataclass
class SignatureDB:
    tables: dict[str, HashTable] = field(
        default_factory=lambda: {
            "md5": HashTable(16),
            "sha1": HashTable(20),
            "sha256": HashTable(32),
        }
    )
    hash_count: int = 0
    yara_rules: Any = None
    yara_count: int = 0
    yara_skipped: str = ""
    ndb: ndb.NdbRules = field(default_factory=ndb.NdbRules)
    # What the engine cannot evaluate, by kind ("ndb target type 3 (normalised HTML)" -> n).
    skipped: Counter[str] = field(default_factory=Counter)
    version: str = ""
    date: int = 0  # epoch seconds of the newest database file
    self_test_only: bool = False  # only the packaged EICAR self-test base is loaded
    files: list[str] = field(default_factory=list)
    # What the agent refuses to execute or open (``.blk`` bundle files; prevention).
    blocklist: BlockList = field(default_factory=BlockList)

    @property
    def records(self) -> int:
        return self.hash_count + self.yara_count + self.ndb.count

    @property
    def skipped_summary(self) -> str:
        """``"ndb target type 3 (normalised HTML): 2; ndb offset …: 1"``, or empty."""
        return "; ".join(f"{kind}: {n}" for kind, n in sorted(self.skipped.items()) if n)

    def add(self, sig: HashSignature) -> None:
        size = -1 if sig.size is None else sig.size
        self.tables[sig.algo].append(bytes.fromhex(sig.digest), size, sig.name.encode())
        self.hash_count += 1

    def match_hashes(self, digests: dict[str, str], size: int) -> str | None:
        for algo in ("sha256", "sha1", "md5"):
            for sig_size, name in self.tables[algo].find(bytes.fromhex(digests[algo])):
                if sig_size is None or sig_size == size:
                    return name
        return None

    def match_ndb(self, data: bytes) -> list[str]:
        """Threat names of the ClamAV body signatures matching the blob."""
        return self.ndb.match(data)

    def match_yara(self, data: bytes, timeout: int = 60) -> list[tuple[str, bool]]:
        """(threat name, suspicious) per matching rule; a rule set slower than ``timeout``
        seconds on this blob raises yara's timeout error."""
        if self.yara_rules is None:
            return []
        out = []
        for match in self.yara_rules.match(data=data, timeout=timeout):
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
        if p.is_file()
        and p.suffix.lower() in (*HASH_SUFFIXES, *NDB_SUFFIXES, *YARA_SUFFIXES, *BLOCK_SUFFIXES)
    )


def packaged_self_test() -> bool:
    """Whether the packaged base declares itself the self-test base (``self_test = true``)."""
    try:
        meta = tomllib.loads((PACKAGED_DB / "VERSION.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return meta.get("self_test") is True


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
    ndb_files: list[Path] = []
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
                db.hash_count += _load_hash_file_into(db.tables, path)
            elif path.suffix.lower() in NDB_SUFFIXES:
                ndb_files.append(path)
            elif path.suffix.lower() in BLOCK_SUFFIXES:
                load_into(db.blocklist, path)
            else:
                yara_files.append(path)
    if ndb_files:
        _load_ndb(db, ndb_files)
    if yara_files and use_yara:
        if yara_available():
            db.yara_rules, db.yara_count = compile_yara(yara_files)
        else:
            db.yara_skipped = "yara-python is not installed: YARA rules skipped"
    db.version = f"{version}+{fingerprint.hexdigest()[:8]}" if local else version
    db.date = date
    db.self_test_only = not local and packaged_self_test()
    for table in db.tables.values():
        table.freeze()  # now, not at the first scan
    db.blocklist.freeze()
    if db.skipped:
        log.info("signatures: skipped, the engine cannot evaluate them: %s", db.skipped_summary)
    return db


def _load_ndb(db: SignatureDB, paths: list[Path]) -> None:
    """ClamAV body signatures need yara-python (they are evaluated as YARA rules), whatever
    the YARA setting for YARA rule files; without it they are all skipped and counted."""
    if not yara_available():
        for path in paths:
            good, bad = _ndb_count(path)
            db.skipped["ndb (yara-python is not installed)"] += good
            db.skipped["ndb unsupported"] += bad
        return
    try:
        db.ndb = ndb.load(paths)
    except ndb.NdbError as exc:
        raise SignatureError(str(exc)) from None
    db.skipped.update(db.ndb.skipped)


def _ndb_count(path: Path) -> tuple[int, int]:
    try:
        return ndb.count(path)
    except ndb.NdbError as exc:
        raise SignatureError(str(exc)) from None
    except OSError as exc:
        raise SignatureError(f"{path}: {exc.strerror}") from None


def validate_files(paths: Iterable[Path]) -> int:
    """Parse candidate files (before they replace the live ones); returns their record count."""
    count = 0
    yara_files = []
    for path in paths:
        suffix = path.suffix.lower()
        if suffix in HASH_SUFFIXES:
            count += len(load_hash_file(path))
        elif suffix in NDB_SUFFIXES:
            count += _ndb_count(path)[0]
        elif suffix in YARA_SUFFIXES:
            yara_files.append(path)
        elif suffix in BLOCK_SUFFIXES:
            count += load_into(BlockList(), path)
        else:
            raise SignatureError(f"{path.name}: not a .hdb, .hsb, .ndb, .yar, .yara or .blk file")
    if yara_files and yara_available():
        count += compile_yara(yara_files)[1]
    return count
