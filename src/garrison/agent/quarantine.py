"""Quarantine: a detected file is moved into the state dir, defanged (XOR-ed, so no scanner or
user can run or open it by mistake), with a metadata JSON (original path, hash, mode, owner,
time, threat).  ``garrison-agent quarantine restore ID`` puts it back byte for byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from garrison.agent.errors import LocalError
from garrison.agent.state import write_private

KEY = bytes(range(0x5A, 0x5A + 32))


def defang(data: bytes) -> bytes:
    """XOR with a fixed 32-byte key; the same call undoes it."""
    key = (KEY * (len(data) // len(KEY) + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(len(data), "big")


@dataclass
class Entry:
    id: str
    original_path: str
    sha256: str
    size: int
    mode: int
    uid: int
    gid: int
    mtime: float
    quarantined_at: float
    threat: str


class Quarantine:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _ensure(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def add(self, path: str, threat: str, expected_sha256: str | None = None) -> Entry:
        """Move ``path`` into quarantine.  With ``expected_sha256``, refuse a file that changed
        since it was detected (never act on a file that was not detected)."""
        self._ensure()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as handle:
                st = os.fstat(handle.fileno())
                data = handle.read()
        except OSError as exc:
            raise LocalError(f"cannot quarantine {path}: {exc.strerror or exc}") from None
        sha = hashlib.sha256(data).hexdigest()
        if expected_sha256 and sha != expected_sha256:
            raise LocalError(f"{path} changed since it was detected; left in place")
        entry = Entry(
            id=uuid.uuid4().hex[:12],
            original_path=path,
            sha256=sha,
            size=len(data),
            mode=st.st_mode & 0o7777,
            uid=st.st_uid,
            gid=st.st_gid,
            mtime=st.st_mtime,
            quarantined_at=time.time(),
            threat=threat,
        )
        blob = self.directory / f"{entry.id}.bin"
        try:
            write_private(blob, defang(data))
            write_private(self.directory / f"{entry.id}.json", json.dumps(asdict(entry)).encode())
            os.unlink(path)
        except OSError as exc:
            for leftover in (blob, self.directory / f"{entry.id}.json"):
                with contextlib.suppress(OSError):
                    leftover.unlink()
            raise LocalError(f"cannot quarantine {path}: {exc.strerror or exc}") from None
        return entry

    def entries(self) -> list[Entry]:
        if not self.directory.is_dir():
            return []
        out = []
        for meta in sorted(self.directory.glob("*.json")):
            try:
                data: dict[str, Any] = json.loads(meta.read_text())
                out.append(Entry(**data))
            except (OSError, ValueError, TypeError):
                continue
        return sorted(out, key=lambda e: e.quarantined_at)

    def get(self, entry_id: str) -> Entry:
        for entry in self.entries():
            if entry.id == entry_id:
                return entry
        raise LocalError(f"no quarantined file with id {entry_id!r}")

    def restore(self, entry_id: str, target: str | None = None, overwrite: bool = False) -> Entry:
        entry = self.get(entry_id)
        destination = Path(target or entry.original_path)
        if destination.exists() and not overwrite:
            raise LocalError(f"{destination} exists; restore elsewhere or overwrite it")
        try:
            data = defang((self.directory / f"{entry.id}.bin").read_bytes())
        except OSError as exc:
            raise LocalError(f"cannot read quarantined file {entry.id}: {exc.strerror}") from None
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise LocalError(f"quarantined file {entry.id} is damaged (hash mismatch)")
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            tmp = destination.with_name(f".{destination.name}.restore")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, entry.mode)
            with contextlib.suppress(PermissionError):
                os.chown(tmp, entry.uid, entry.gid)
            os.utime(tmp, (entry.mtime, entry.mtime))
            os.replace(tmp, destination)
        except OSError as exc:
            raise LocalError(f"cannot restore to {destination}: {exc.strerror or exc}") from None
        (self.directory / f"{entry.id}.bin").unlink(missing_ok=True)
        (self.directory / f"{entry.id}.json").unlink(missing_ok=True)
        return entry
