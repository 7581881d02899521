"""The scan engine: walks a tree (never following a symlink), reads each regular file once,
and matches hash signatures and YARA rules on it and inside its zip members.

An unreadable file, a vanished file or a broken archive is counted as an error with its reason;
it never stops the scan.  The engine only detects: acting on detections is ``actions``' job.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from garrison.agent.config import ScanConfig
from garrison.agent.scan import archives, clamav
from garrison.agent.scan.signatures import SignatureDB, digests

Progress = Callable[[int, int, str], None]


@dataclass
class Detection:
    path: str  # the file on disk
    threat: str
    module: str  # garrison-hash | clamav-body | yara | clamav
    sha256: str  # of the detected content (the member, inside an archive)
    file_sha256: str  # of the file on disk, checked again before any action
    size: int
    member: str | None = None
    suspicious: bool = False
    detection_time: int = field(default_factory=lambda: int(time.time()))
    action: str = "none"


@dataclass(frozen=True)
class ScanFailure:
    """One object not (fully) scanned, for ``station_scan_error``: ``kind`` is
    ``unreadable`` (the file could not be read), ``archive`` (an archive limit: a zip bomb
    contained, an encrypted or broken member) or ``timeout`` (the YARA time budget)."""

    path: str
    reason: str
    kind: str


@dataclass
class ScanResult:
    scanned: int = 0
    skipped: int = 0
    detections: list[Detection] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failures: list[ScanFailure] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    ended: float = 0.0

    def fail(self, path: str, reason: str, kind: str) -> None:
        self.errors.append(f"{path}: {reason}")
        self.failures.append(ScanFailure(path, reason, kind))

    @property
    def malware(self) -> int:
        return len({d.path for d in self.detections if not d.suspicious})

    @property
    def suspicious(self) -> int:
        malware = {d.path for d in self.detections if not d.suspicious}
        return len({d.path for d in self.detections if d.suspicious} - malware)

    @property
    def duration(self) -> float:
        return max((self.ended or time.time()) - self.started, 0.0)


def iso_duration(seconds: float) -> str:
    """``PT0H1M30S``, the Armadito shape (integer components)."""
    total = int(seconds)
    return f"PT{total // 3600}H{total % 3600 // 60}M{total % 60}S"


def excluded(path: str, patterns: list[str]) -> bool:
    name = os.path.basename(path)
    for pattern in patterns:
        if not pattern:
            continue
        if pattern.startswith("/") and (
            path == pattern.rstrip("/") or path.startswith(pattern.rstrip("/") + "/")
        ):
            return True
        if fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def _open_regular(path: str) -> int:
    """Open without following a symlink and without blocking on a FIFO swapped in."""
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)


def yara_errors() -> tuple[type[Exception], ...]:
    try:
        import yara  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return ()
    return (yara.Error,)


class Engine:
    def __init__(self, db: SignatureDB, config: ScanConfig) -> None:
        self.db = db
        self.config = config
        self.open_file: Callable[[str], int] = _open_regular

    # -- walking ------------------------------------------------------------------------

    def walk(self, roots: list[str], errors: list[str]) -> Iterator[str]:
        """Regular files under the roots; symlinks are never followed (a symlink's target is
        scanned only if it is itself inside the tree); exclusions apply to files and dirs."""
        for root in roots:
            real = os.path.realpath(root)
            if excluded(real, self.config.exclude):
                continue
            try:
                st = os.stat(real)
            except OSError as exc:
                errors.append(f"{root}: {exc.strerror or exc}")
                continue
            if stat.S_ISREG(st.st_mode):
                yield real
                continue

            def onerror(exc: OSError) -> None:
                errors.append(f"{exc.filename}: {exc.strerror or exc}")

            for directory, dirs, files in os.walk(real, onerror=onerror, followlinks=False):
                dirs[:] = sorted(
                    d for d in dirs if not excluded(os.path.join(directory, d), self.config.exclude)
                )
                for name in sorted(files):
                    path = os.path.join(directory, name)
                    if excluded(path, self.config.exclude):
                        continue
                    yield path

    # -- one file -----------------------------------------------------------------------

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when it is not a regular file or too large."""
        fd = self.open_file(path)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > self.config.max_file_size:
                return None
            chunks = []
            remaining = self.config.max_file_size + 1
            while remaining > 0:
                chunk = os.read(fd, min(1 << 20, remaining))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            data = b"".join(chunks)
            return None if len(data) > self.config.max_file_size else data
        finally:
            os.close(fd)

    def match(self, data: bytes, yara_timeout: int = 60) -> list[tuple[str, str, bool]]:
        """(threat, module, suspicious) for a blob."""
        found: list[tuple[str, str, bool]] = []
        name = self.db.match_hashes(digests(data), len(data))
        if name:
            found.append((name, "garrison-hash", False))
        for threat in self.db.match_ndb(data):  # ClamAV .ndb body signatures
            if not any(t == threat for t, _, _ in found):
                found.append((threat, "clamav-body", False))
        if self.config.yara:
            for threat, suspicious in self.db.match_yara(data, yara_timeout):
                if not any(t == threat for t, _, _ in found):
                    found.append((threat, "yara", suspicious))
        return found

    def _matches(self, data: bytes, where: str, result: ScanResult) -> list[tuple[str, str, bool]]:
        """``match``, with a YARA failure on this blob (its timeout: a rule too slow for
        this file) counted as the file's error instead of ending the scan."""
        try:
            return self.match(data)
        except yara_errors() as exc:
            kind = "timeout" if "timeout" in type(exc).__name__.lower() else "unreadable"
            result.fail(where, f"YARA: {exc}", kind)
            return []

    def scan_file(self, path: str, result: ScanResult) -> None:
        try:
            lst = os.lstat(path)
            if not stat.S_ISREG(lst.st_mode):
                result.skipped += 1  # symlink, FIFO, socket, device: never read
                return
            data = self.read(path)
        except OSError as exc:
            result.fail(path, str(exc.strerror or exc), "unreadable")
            return
        if data is None:
            result.skipped += 1
            return
        result.scanned += 1
        file_sha = digests(data)["sha256"]
        for threat, module, suspicious in self._matches(data, path, result):
            result.detections.append(
                Detection(path, threat, module, file_sha, file_sha, len(data), None, suspicious)
            )
        if self.config.archives and archives.is_zip(data):
            for item in archives.members(data, self.config.archive_max_size):
                if isinstance(item, archives.ArchiveError):
                    result.fail(path, str(item), "archive")
                    continue
                for threat, module, suspicious in self._matches(
                    item.data, f"{path}!{item.name}", result
                ):
                    result.detections.append(
                        Detection(
                            path,
                            threat,
                            module,
                            digests(item.data)["sha256"],
                            file_sha,
                            len(item.data),
                            item.name,
                            suspicious,
                        )
                    )

    # -- whole scan ---------------------------------------------------------------------

    def scan(
        self,
        roots: list[str],
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> ScanResult:
        result = ScanResult()
        count_errors: list[str] = []
        total = sum(1 for _ in self.walk(roots, count_errors)) if progress else 0
        for done, path in enumerate(self.walk(roots, result.errors), start=1):
            if should_stop and should_stop():
                result.errors.append("scan interrupted")
                break
            self.scan_file(path, result)
            if progress:
                progress(done, max(total, done), path)
        if self.config.clamav:
            self._clamav(roots, result)
        result.ended = time.time()
        return result

    def _clamav(self, roots: list[str], result: ScanResult) -> None:
        try:
            hits = clamav.scan([os.path.realpath(r) for r in roots], self.config.max_file_size)
        except clamav.ClamAVError as exc:
            result.errors.append(str(exc))
            return
        seen = {(d.path, d.member) for d in result.detections}
        for hit in hits:
            path, _, member = hit.path.partition("!")
            if (path, member or None) in seen or not Path(path).is_file():
                continue
            try:
                data = self.read(path)
            except OSError as exc:
                result.errors.append(f"{path}: {exc.strerror or exc}")
                continue
            if data is None:
                continue
            sha = digests(data)["sha256"]
            result.detections.append(
                Detection(path, hit.name, "clamav", sha, sha, len(data), member or None)
            )
