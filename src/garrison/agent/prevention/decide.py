"""The verdict on one file: on the block list (by hash, path or name), detected by the
scan engine (on-access), or allowed; and the cache that makes the next decision on the same
file version free.

Verdicts are keyed like the sensors' hash cache (device, inode, size, mtime, ctime:
``sensors.hashes.file_key``), so a file rewritten or replaced is decided again, and they
belong to one content generation (the engine's database object): a new block list or new
signatures empty the cache at the next lookup.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from garrison.agent.config import ScanConfig
from garrison.agent.prevention import protect
from garrison.agent.scan.engine import Engine, yara_errors
from garrison.agent.scan.signatures import SignatureDB
from garrison.agent.sensors.hashes import Digests, FileKey, HashCache, digest_fd

CHUNK = 1 << 20


@dataclass(frozen=True)
class Verdict:
    allow: bool
    reason: str = ""  # "" | blocklist | threat
    rule: str = ""  # hash:<hex>, path:<glob>, name:<glob>, or the threat name
    module: str = ""  # the engine module of a threat
    md5: str = ""
    sha256: str = ""
    # Why the allow is not a real verdict (unreadable, too_large, yara_timeout, protected):
    # such a verdict is not cached unless the file cannot change it.
    note: str = ""


ALLOW = Verdict(True)


class VerdictCache:
    def __init__(self, size: int) -> None:
        self.size = max(size, 1)
        self._items: OrderedDict[tuple[FileKey, bool], Verdict] = OrderedDict()
        self._generation: object = None
        self._lock = threading.Lock()

    def get(self, generation: object, key: FileKey, scan: bool) -> Verdict | None:
        with self._lock:
            if generation is not self._generation:
                self._items.clear()
                self._generation = generation
                return None
            found = self._items.get((key, scan))
            if found is not None:
                self._items.move_to_end((key, scan))
            return found

    def put(self, generation: object, key: FileKey, scan: bool, verdict: Verdict) -> None:
        with self._lock:
            if generation is not self._generation:
                self._items.clear()
                self._generation = generation
            self._items[(key, scan)] = verdict
            # A scanned verdict also answers the blocklist-only question for the same file.
            if scan:
                self._items[(key, False)] = verdict
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def _read(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(CHUNK, size - offset), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _sha256(fd: int, limit: int) -> str | None:
    digest = hashlib.sha256()
    offset = 0
    try:
        while chunk := os.pread(fd, CHUNK, offset):
            offset += len(chunk)
            if offset > limit:
                return None
            digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _sha1(fd: int) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


class Decider:
    """Makes verdicts on open descriptors (never by path: the descriptor is the object the
    kernel is asking about, whatever was renamed meanwhile)."""

    def __init__(
        self,
        hashes: HashCache,
        scan_config: ScanConfig,
        max_file_size: int,
        yara_budget: float,
    ) -> None:
        self.hashes = hashes
        self.scan_config = scan_config
        self.max_file_size = max_file_size
        # yara-python counts its timeout in whole seconds: at least one.
        self.yara_timeout = max(1, math.ceil(yara_budget))
        self.yara_timeouts = 0
        self.unreadable = 0

    def digests(self, fd: int, key: FileKey, size: int, md5: bool) -> Digests | None:
        """From the sensors' hash cache, or hashed now.  Without ``md5`` (no MD5 entry on
        the block list, no scan) only the SHA-256 is computed: a third of the time of both
        (bench onaccess), and such a result is not cached as the pair the cache holds."""
        found = self.hashes.get(key)
        if found is not None:
            return found
        if size > self.max_file_size:
            return None
        if not md5:
            sha = _sha256(fd, self.max_file_size)
            return Digests("", sha) if sha is not None else None
        digests = digest_fd(fd, self.max_file_size)
        if digests is not None:
            self.hashes.put(key, digests)
        return digests

    def decide(
        self, db: SignatureDB, fd: int, key: FileKey, size: int, path: str, scan: bool
    ) -> Verdict:
        blocklist = db.blocklist
        if not blocklist.empty:
            rule = blocklist.match_path(path)
            if rule is not None and not any(p == path for p in protect.protected()):
                return Verdict(False, "blocklist", rule)
        want_md5 = scan or bool(blocklist.tables["md5"])
        digests = self.digests(fd, key, size, want_md5) if (scan or not blocklist.empty) else None
        if digests is None and (scan or not blocklist.empty):
            self.unreadable += 1
            return Verdict(True, note="too_large" if size > self.max_file_size else "unreadable")
        md5 = digests.md5 if digests else ""
        sha256 = digests.sha256 if digests else ""
        if digests is not None and not blocklist.empty:
            found = {"sha256": sha256}
            if md5:
                found["md5"] = md5
            if blocklist.tables["sha1"]:
                found["sha1"] = _sha1(fd)
            rule = blocklist.match_hashes(found)
            if rule is not None:
                if protect.is_protected(sha256):  # never, whatever the list says
                    return Verdict(True, md5=md5, sha256=sha256, note="protected")
                return Verdict(False, "blocklist", rule, md5=md5, sha256=sha256)
        if scan:
            data = _read(fd, size)
            engine = Engine(db, self.scan_config)
            try:
                found_threats = engine.match(data, self.yara_timeout)
            except yara_errors():
                self.yara_timeouts += 1
                return Verdict(True, md5=md5, sha256=sha256, note="yara_timeout")
            for threat, module, suspicious in found_threats:
                if not suspicious:
                    return Verdict(False, "threat", threat, module, md5, sha256)
        return Verdict(True, md5=md5, sha256=sha256)
