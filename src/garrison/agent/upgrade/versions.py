"""The installed versions under ``<state-dir>/versions/`` and the moves between them:
unpack a checked package, switch ``current``, restart through the launcher, confirm a
trial after the first check-in.  The layout and the trial record are the launcher's
(:mod:`.launcher`), which must run without this module."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from garrison import __version__
from garrison.agent.state import StateDir
from garrison.agent.upgrade import launcher

log = logging.getLogger("garrison.agent.upgrade")


def directory(state: StateDir) -> Path:
    return state.path / launcher.VERSIONS


def record(state: StateDir) -> dict[str, Any] | None:
    return launcher.read_record(directory(state))


def save(state: StateDir, value: dict[str, Any]) -> None:
    launcher.write_record(directory(state), value)


def _launcher_file(versions: Path) -> Path:
    """The stable copy, written once from the version that first installs another."""
    path = versions / launcher.LAUNCHER
    if not path.exists():
        tmp = versions / (launcher.LAUNCHER + ".tmp")
        shutil.copyfile(launcher.__file__, tmp)
        os.replace(tmp, path)
    return path


def unpack(state: StateDir, version: str, data: bytes) -> str:
    """Unpack a checked package into ``versions/<version>/`` (through a temporary
    directory, so a full disk leaves no half version behind); its directory name."""
    versions = directory(state)
    versions.mkdir(mode=0o700, parents=True, exist_ok=True)
    _launcher_file(versions)
    name = version
    final = versions / name
    partial = versions / f".unpack-{name}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(partial)  # names checked by agent_package.read
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return name


def switch(state: StateDir, job_id: int, to_version: str, name: str, confirm_seconds: int) -> None:
    """Record the trial, then point ``current`` at the new version (the launcher rolls back a
    trial whose switch did not happen)."""
    versions = directory(state)
    previous = launcher.current_dir(versions)
    save(
        state,
        {
            "job_id": job_id,
            "from_version": __version__,
            "to_version": to_version,
            "target": name,
            "previous": previous.name if previous is not None else "",
            "confirm_seconds": confirm_seconds,
            "deadline": time.time() + confirm_seconds,
            "state": launcher.TRIAL,
            "reason": "",
        },
    )
    launcher.point_current(versions, name)


def confirm(state: StateDir) -> dict[str, Any] | None:
    """After a check-in: a trial of this very version becomes ``confirmed``; the record."""
    found = record(state)
    if (
        found is None
        or found.get("state") != launcher.TRIAL
        or found.get("to_version") != __version__
    ):
        return None
    found.update(state=launcher.CONFIRMED, confirmed_at=time.time())
    save(state, found)
    log.info("version %s confirmed (it checked in)", __version__)
    return found


def restart_command(state: StateDir) -> list[str]:
    return [
        sys.executable,
        str(_launcher_file(directory(state))),
        str(state.path.resolve()),
        *sys.argv[1:],
    ]


def restart(state: StateDir) -> None:
    """Start again through the launcher: a supervising launcher is asked with the exit code
    ``RESTART``; otherwise this process becomes the launcher (``exec``: same pid)."""
    if os.environ.get(launcher.SUPERVISED_ENV) == "1":
        sys.stdout.flush()
        os._exit(launcher.RESTART)
    command = restart_command(state)
    log.info("restarting: %s", " ".join(command))
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        sys.stderr.flush()
    os.execv(sys.executable, command)  # noqa: S606 - the launcher, by absolute path


def redirect(state: StateDir) -> None:
    """At the daemon's start from the installed entry point: when an upgrade is installed,
    go through the launcher (which runs it), so a restarted service keeps it."""
    if os.environ.get(launcher.LAUNCHED_ENV) == "1":
        return
    versions = directory(state)
    if (versions / launcher.LAUNCHER).exists() and (
        launcher.current_dir(versions) is not None or record(state) is not None
    ):
        os.execv(sys.executable, restart_command(state))  # noqa: S606
