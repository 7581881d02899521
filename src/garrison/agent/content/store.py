"""The content directory in the state dir::

    content/
      current -> v000000012-k3j2…      the installed serial (a relative symlink)
      v000000012-k3j2…/                 its files and manifest.json (the signed envelope)
      v000000011-…/                     the previous one: a delta's base, kept for one swap
      partial/<sha256>.part             downloads in progress (resumed with Range)
      status.json                       the last failure (so it is reported once)

An update fills a new ``v…`` directory and then replaces ``current`` in one ``rename``: a
reader (a scan started by hand in another process) sees the old set or the new one, never a
mix.  Files are never modified in place: a file kept from one serial to the next is a hard
link.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.agent.content import wire
from garrison.agent.content.errors import ContentDeferred, ContentRefused
from garrison.agent.errors import LocalError
from garrison.agent.scan.signatures import PACKAGED_DB
from garrison.agent.state import StateDir

CURRENT = "current"
MANIFEST = "manifest.json"
PARTIAL = "partial"
STATUS = "status.json"


@dataclass(frozen=True)
class Installed:
    directory: Path
    manifest: wire.Manifest
    envelope: dict[str, Any]


def disk_error(what: str, exc: OSError) -> ContentDeferred:
    reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror
    return ContentDeferred(f"{what}: {reason or exc}")


def _replace(source: str, target: str) -> None:
    os.replace(source, target)


class ContentStore:
    # The one write that makes a new directory live: a test replaces it to simulate a full
    # disk or a crash at the swap.
    replace: Callable[[str, str], None] = staticmethod(_replace)

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self.root = state.path / "content"

    # -- what is installed ---------------------------------------------------------------

    @property
    def current_link(self) -> Path:
        return self.root / CURRENT

    def live_dir(self) -> Path | None:
        try:
            target = os.readlink(self.current_link)
        except OSError:
            return None
        path = (self.root / target).resolve()
        if path.parent != self.root.resolve() or not path.is_dir():
            return None
        return path

    def installed(self) -> Installed | None:
        """The manifest in force (checked when it was installed; the state dir is the
        agent's own, 0700), or None."""
        live = self.live_dir()
        if live is None:
            return None
        try:
            envelope = json.loads((live / MANIFEST).read_text())
            manifest = wire.parse_manifest(wire.parse_envelope(envelope).manifest)
        except (OSError, ValueError, ContentRefused):
            return None
        return Installed(live, manifest, envelope)

    def engine_dirs(self, manifest: wire.Manifest | None, live: Path | None) -> list[Path]:
        """What the engine loads: the packaged base, the signed content, and the files an
        UpdateSignatures job installed from a source: those only while no signed content
        is installed (an agent from before signed content keeps them) or when the content
        policy allows unsigned sources."""
        dirs = [PACKAGED_DB]
        if live is not None:
            dirs.append(live)
        if manifest is None or manifest.allow_unsigned_sources:
            dirs.append(self.state.signatures_dir)
        return dirs

    # -- building a new directory --------------------------------------------------------

    def ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            (self.root / PARTIAL).mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise disk_error(f"cannot create {self.root}", exc) from None

    def new_dir(self, serial: int) -> Path:
        self.ensure()
        try:
            return Path(tempfile.mkdtemp(prefix=f"v{serial:09d}-", dir=self.root))
        except OSError as exc:
            raise disk_error("cannot create the new content directory", exc) from None

    def partial(self, sha256: str) -> Path:
        return self.root / PARTIAL / f"{sha256}.part"

    @staticmethod
    def link_or_copy(source: Path, target: Path) -> None:
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)

    def write_manifest(self, directory: Path, envelope: dict[str, Any]) -> None:
        try:
            with open(directory / MANIFEST, "wb") as handle:
                handle.write(json.dumps(envelope, sort_keys=True).encode())
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise disk_error("cannot write the new manifest", exc) from None

    # -- the swap ------------------------------------------------------------------------

    def swap(self, directory: Path) -> Path | None:
        """Make ``directory`` current in one rename; returns the directory it replaced."""
        previous = self.live_dir()
        temp = self.root / f".{CURRENT}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        try:
            os.symlink(directory.name, temp)
            self.replace(str(temp), str(self.current_link))
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise disk_error("cannot switch to the new content", exc) from None
        with contextlib.suppress(OSError):
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return previous

    def revert(self, previous: Path | None) -> None:
        """Back to ``previous`` after a swap whose engine then failed."""
        if previous is None:
            with contextlib.suppress(FileNotFoundError):
                self.current_link.unlink()
            return
        temp = self.root / f".{CURRENT}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        try:
            os.symlink(previous.name, temp)
            os.replace(temp, self.current_link)
        except OSError as exc:
            raise LocalError(f"cannot switch back to {previous.name}: {exc.strerror}") from None

    @staticmethod
    def discard(directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)

    def prune(self, keep: set[Path]) -> None:
        """Remove the version directories other than ``keep`` (current and previous)."""
        kept = {p.resolve() for p in keep}
        try:
            entries = list(self.root.iterdir())
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("v") and entry.is_dir() and entry.resolve() not in kept:
                self.discard(entry)

    def prune_partials(self, keep: set[str]) -> None:
        """Drop the unfinished downloads of files no longer wanted (by sha256)."""
        with contextlib.suppress(OSError):
            for entry in (self.root / PARTIAL).iterdir():
                if entry.name.removesuffix(".part") not in keep:
                    with contextlib.suppress(OSError):
                        entry.unlink()

    # -- failures ------------------------------------------------------------------------

    def last_failure(self) -> dict[str, Any]:
        try:
            data = self.state.read_json(self.root / STATUS, {})
        except LocalError:
            return {}
        return data if isinstance(data, dict) else {}

    def record_failure(self, manifest_sha256: str, reason: str, permanent: bool) -> bool:
        """Remember the failure; True when it is new (to be reported), False when the same
        manifest failed the same way last time."""
        last = self.last_failure()
        new = (last.get("manifest_sha256"), last.get("reason")) != (manifest_sha256, reason)
        with contextlib.suppress(LocalError, ContentDeferred):
            self.ensure()
            self.state.write_json(
                self.root / STATUS,
                {"manifest_sha256": manifest_sha256, "reason": reason, "permanent": permanent},
            )
        return new

    def clear_failure(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / STATUS).unlink()

    def refused(self, manifest_sha256: str) -> bool:
        """This manifest was refused for good (not worth fetching again at a check-in)."""
        last = self.last_failure()
        return bool(last.get("permanent")) and last.get("manifest_sha256") == manifest_sha256
