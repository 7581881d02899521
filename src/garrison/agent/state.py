"""The agent's local state: one directory (0700) holding identity, credentials, config, spool,
stored jobs, quarantine and signatures.  Files holding secrets are written 0600, atomically.

The station uuid comes from DMI (``/sys/class/dmi/id/product_uuid``) when readable, else from
``/etc/machine-id`` formatted as a uuid, else a random uuid kept in the state dir.  With a
non-default state dir, ``GARRISON_AGENT_UUID`` overrides it (several agents on one machine).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.agent.errors import LocalError

ENV_STATE_DIR = "GARRISON_AGENT_STATE_DIR"
ENV_UUID = "GARRISON_AGENT_UUID"
DMI_UUID = Path("/sys/class/dmi/id/product_uuid")
MACHINE_ID = Path("/etc/machine-id")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# DMI placeholders some firmwares ship: they are not unique.
_BOGUS_DMI = {"00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"}


def default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/garrison-agent")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "garrison-agent"


def write_private(path: Path, data: bytes) -> None:
    """Atomic write of a 0600 file (temp file in the same dir, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def machine_id_uuid(text: str) -> str | None:
    raw = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{32}", raw):
        return None
    return str(uuidlib.UUID(hex=raw)).upper()


def dmi_uuid(text: str) -> str | None:
    value = text.strip().upper()
    if not _UUID_RE.match(value) or value in _BOGUS_DMI:
        return None
    return value


@dataclass
class Credentials:
    agent_id: int
    token: str
    server_url: str
    scheduler_id: int = 0


class StateDir:
    def __init__(self, path: Path, explicit: bool = False) -> None:
        self.path = path
        self.explicit = explicit

    @classmethod
    def resolve(cls, given: Path | None) -> StateDir:
        if given is not None:
            return cls(given.expanduser().absolute(), explicit=True)
        env = os.environ.get(ENV_STATE_DIR)
        if env:
            return cls(Path(env).expanduser().absolute(), explicit=True)
        return cls(default_state_dir(), explicit=False)

    # -- layout ------------------------------------------------------------------------------

    @property
    def credentials_file(self) -> Path:
        return self.path / "agent.json"

    @property
    def config_file(self) -> Path:
        return self.path / "agent.toml"

    @property
    def spool_file(self) -> Path:
        return self.path / "spool.db"

    @property
    def jobs_file(self) -> Path:
        return self.path / "jobs.json"

    @property
    def quarantine_dir(self) -> Path:
        return self.path / "quarantine"

    @property
    def signatures_dir(self) -> Path:
        return self.path / "signatures"

    @property
    def isolation_file(self) -> Path:
        return self.path / "isolation.json"

    @property
    def pid_file(self) -> Path:
        return self.path / "daemon.pid"

    def ensure(self) -> StateDir:
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.path, 0o700)
        except OSError as exc:
            raise LocalError(f"cannot use state dir {self.path}: {exc.strerror}") from None
        return self

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive lock between processes (daemon and a hand-run task)."""
        self.ensure()
        # 0600 as every file of the state dir (the start-up check narrows anything wider).
        fd = os.open(self.path / f".{name}.lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- JSON files ----------------------------------------------------------------------------

    def read_json(self, path: Path, default: Any) -> Any:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return default
        except (OSError, ValueError) as exc:
            raise LocalError(f"cannot read {path}: {exc}") from None

    def write_json(self, path: Path, data: Any) -> None:
        self.ensure()
        try:
            write_private(path, json.dumps(data, indent=2, sort_keys=True).encode())
        except OSError as exc:
            raise LocalError(f"cannot write {path}: {exc.strerror}") from None

    # -- identity ----------------------------------------------------------------------------

    def station_uuid(self) -> str:
        override = os.environ.get(ENV_UUID)
        if override and self.explicit:
            value = dmi_uuid(override)
            if value is None:
                raise LocalError(f"{ENV_UUID} is not a uuid: {override!r}")
            return value
        for source, reader in ((DMI_UUID, dmi_uuid), (MACHINE_ID, machine_id_uuid)):
            try:
                found = reader(source.read_text())
            except OSError:
                continue
            if found:
                return found
        # No hardware or OS identity: a random one, kept so it stays stable.
        stored = self.read_json(self.path / "identity.json", {})
        if isinstance(stored, dict) and isinstance(stored.get("uuid"), str):
            return str(stored["uuid"])
        value = str(uuidlib.uuid4()).upper()
        self.write_json(self.path / "identity.json", {"uuid": value})
        return value

    # -- credentials ---------------------------------------------------------------------------

    def credentials(self) -> Credentials | None:
        data = self.read_json(self.credentials_file, None)
        if not isinstance(data, dict):
            return None
        try:
            return Credentials(
                agent_id=int(data["agent_id"]),
                token=str(data.get("token") or ""),
                server_url=str(data.get("server_url") or ""),
                scheduler_id=int(data.get("scheduler_id") or 0),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def save_credentials(self, creds: Credentials) -> None:
        self.write_json(
            self.credentials_file,
            {
                "agent_id": creds.agent_id,
                "token": creds.token,
                "server_url": creds.server_url,
                "scheduler_id": creds.scheduler_id,
            },
        )
