"""The stable launcher: starts the agent version ``<state-dir>/versions/current`` points to,
and watches a new version through its trial.

It imports nothing of ``garrison`` (only the standard library), because it must work
whatever version is installed: the first install copies this file to
``<state-dir>/versions/launcher.py`` and every restart runs that copy::

    python <state-dir>/versions/launcher.py <state-dir> <agent arguments...>

- No trial under way: the current version's directory goes first on ``sys.path`` and its
  ``garrison.agent.cli.main`` runs in this process (nothing stays around it).
- ``upgrade.json`` says ``trial`` and ``current`` points to its version: the new version
  runs as a child; this process waits for the child to write ``confirmed`` (after its
  first check-in) until the deadline.  A child that exits first, or a deadline passed,
  puts ``current`` back to the previous version, records ``rolled_back`` with the reason
  and starts the previous version (which reports the job failed).  Once confirmed, this
  process stays the child's parent, passing signals on and exiting with its code; a child
  exiting with ``RESTART`` (another upgrade) starts the launcher again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

VERSIONS = "versions"
CURRENT = "current"
RECORD = "upgrade.json"
LAUNCHER = "launcher.py"
RESTART = 75  # the agent's exit code for "start me again through the launcher"
LAUNCHED_ENV = "GARRISON_AGENT_LAUNCHED"  # set: the launcher started this process
SUPERVISED_ENV = "GARRISON_AGENT_SUPERVISED"  # set: a launcher waits on this process
CHILD_ENV = "GARRISON_AGENT_TRIAL_CHILD"
TRIAL, CONFIRMED, ROLLED_BACK = "trial", "confirmed", "rolled_back"
STOP_GRACE_SECONDS = 20.0


def read_record(versions: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((versions / RECORD).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_record(versions: Path, record: dict[str, Any]) -> None:
    """Through a temporary file, fsync'd, then renamed: a crash leaves the old or the new."""
    tmp = versions / (RECORD + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, versions / RECORD)


def current_dir(versions: Path) -> Path | None:
    """The directory ``current`` points to; None: the installed (base) version runs."""
    link = versions / CURRENT
    try:
        target = os.readlink(link)
    except OSError:
        return None
    found = (versions / target).resolve()
    return found if (found / "garrison" / "__init__.py").is_file() else None


def point_current(versions: Path, name: str) -> None:
    """``current`` -> ``name`` (a directory under ``versions``), atomically: a new link is
    renamed over the old one; an empty ``name`` removes it (the base install runs)."""
    link = versions / CURRENT
    if not name:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        return
    tmp = versions / (CURRENT + ".new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(name, tmp)
    os.replace(tmp, link)
    fd = os.open(versions, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def roll_back(versions: Path, record: dict[str, Any], reason: str) -> None:
    point_current(versions, str(record.get("previous") or ""))
    failed = str(record.get("target") or "")
    record.update(state=ROLLED_BACK, reason=reason, rolled_back_at=time.time())
    write_record(versions, record)
    if failed and failed != record.get("previous"):
        shutil.rmtree(versions / failed, ignore_errors=True)
    sys.stderr.write(f"garrison-agent launcher: rolled back: {reason}\n")


def _run_here(state: Path, args: list[str]) -> None:
    """Run the current version's agent in this process."""
    target = current_dir(state / VERSIONS)
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(here)]
    if target is not None:
        sys.path.insert(0, str(target))
    os.environ[LAUNCHED_ENV] = "1"
    os.environ.pop(CHILD_ENV, None)
    sys.argv = ["garrison-agent", *args]
    from garrison.agent.cli import main as agent_main  # the version just put first

    agent_main(args)


def _again(state: Path, args: list[str], supervised: bool) -> None:
    env = dict(os.environ)
    env.pop(CHILD_ENV, None)
    if not supervised:
        env.pop(SUPERVISED_ENV, None)
    os.execve(sys.executable, [sys.executable, __file__, str(state), *args], env)  # noqa: S606


def _supervise(state: Path, args: list[str], record: dict[str, Any]) -> int:
    versions = state / VERSIONS
    deadline = float(record.get("deadline") or 0)
    to = record.get("to_version", "?")
    if time.time() > deadline:
        roll_back(versions, record, f"version {to} was not confirmed before its deadline")
        _again(state, args, supervised=False)
    env = {**os.environ, LAUNCHED_ENV: "1", SUPERVISED_ENV: "1", CHILD_ENV: "1"}
    child = subprocess.Popen([sys.executable, __file__, str(state), *args], env=env)  # noqa: S603
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = stopping or signum in (signal.SIGTERM, signal.SIGINT)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    confirmed = False
    while True:
        code = child.poll()
        if not confirmed:
            now = read_record(versions) or {}
            confirmed = now.get("state") == CONFIRMED and now.get("job_id") == record.get("job_id")
        if code is not None:
            if code == RESTART:
                _again(state, args, supervised=False)
            if confirmed or stopping:
                return code
            roll_back(versions, record, f"version {to} exited with code {code} before checking in")
            _again(state, args, supervised=False)
        if not confirmed and not stopping and time.time() > deadline:
            child.terminate()
            try:
                child.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            seconds = record.get("confirm_seconds", "?")
            roll_back(versions, record, f"version {to} did not check in within {seconds} s")
            _again(state, args, supervised=False)
        time.sleep(0.25)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write("usage: launcher.py STATE_DIR [agent arguments...]\n")
        return 2
    state = Path(argv[1]).resolve()
    args = argv[2:]
    versions = state / VERSIONS
    record = read_record(versions)
    if os.environ.get(CHILD_ENV) != "1" and record is not None and record.get("state") == TRIAL:
        target = current_dir(versions)
        if target is not None and target.name == record.get("target"):
            return _supervise(state, args, record)
        roll_back(versions, record, "the switch to the new version did not complete")
    _run_here(state, args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
