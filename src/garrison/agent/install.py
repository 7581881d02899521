"""``garrison-agent install``: set up this machine's agent in one command.

Writes agent.toml (``[server] url`` and ``ca_sha256``), enrolls through the Enrollment task
(telling the server this is an installation, so that it records ``agent_installation``),
installs the systemd unit (``garrison.agent.service``) and enables and starts it when
systemd is the running init.  Where it is not (a container, a chroot, ``--root``) the unit
is enabled offline (``systemctl --root``) and the message says that nothing was started.

``root`` redirects every path (state dir, unit) below another directory: an image being
prepared, and the tests.  The paths written into the unit stay the ones seen from inside.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from garrison import __version__
from garrison.agent import trust
from garrison.agent.context import Agent
from garrison.agent.errors import LocalError, UsageProblem
from garrison.agent.jobs.services import SYSTEMD_RUNTIME
from garrison.agent.service import DEFAULT_STATE_DIR, UNIT_NAME, unit_text
from garrison.agent.state import Credentials, StateDir
from garrison.agent.tasks import enrollment

UNIT_DIR = "/etc/systemd/system"
SYSTEMCTL_TIMEOUT = 60.0


def fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as 64 lower-case hex digits (colons and case as printed by
    openssl are accepted); empty stays empty (no pin given)."""
    return trust.normalize_pin(text) if text.strip() else ""


@dataclass(frozen=True)
class Request:
    server: str
    key: str
    ca_sha256: str = ""
    root: Path = Path("/")
    state_dir: str = DEFAULT_STATE_DIR
    start: bool = True
    program: str | None = None


@dataclass(frozen=True)
class Installed:
    credentials: Credentials
    unit_path: Path
    installation_id: str
    started: bool
    note: str  # what was done with the service, in one sentence


def _inside(root: Path, path: str) -> Path:
    if not path.startswith("/"):
        raise UsageProblem(f"--state-dir must be an absolute path: {path!r}")
    return root / path.lstrip("/")


def agent_program() -> str:
    """The program the unit runs: the ``garrison-agent`` beside this Python (a virtual
    environment's, /opt/garrison-agent's), else the one on PATH."""
    beside = Path(sys.executable).parent / "garrison-agent"
    if beside.is_file():
        return str(beside.absolute())
    found = shutil.which("garrison-agent")
    if found is None:
        raise LocalError("cannot find the garrison-agent program for the systemd unit")
    return str(Path(found).absolute())


def _installation(state: StateDir) -> dict[str, str]:
    """``id`` names this machine's installation: kept, so that running install again (after
    a failure, or to move to another server) reports the same one; ``sessionid`` names
    this run."""
    path = state.path / "installation.json"
    known = state.read_json(path, {})
    previous = known.get("id") if isinstance(known, dict) else None
    marks = {
        "id": previous if isinstance(previous, str) and previous else str(uuid.uuid4()),
        "sessionid": str(uuid.uuid4()),
    }
    state.write_json(path, marks)  # before enrolling: a refused run's retry keeps the id
    return marks


def _systemctl(*args: str) -> None:
    program = shutil.which("systemctl")
    if program is None:
        raise LocalError("systemctl is not installed: the unit was written but not enabled")
    try:
        done = subprocess.run(  # noqa: S603 (a fixed program and arguments)
            [program, *args],
            capture_output=True,
            text=True,
            timeout=SYSTEMCTL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LocalError(f"systemctl {' '.join(args)} did not answer in time") from None
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise LocalError(
            f"systemctl {' '.join(args)} failed ({done.returncode}): "
            f"{reason[-1] if reason else 'no message'}"
        )


def _service(request: Request, runtime: Path) -> tuple[bool, str]:
    if not request.start:
        return False, "not enabled (--no-start)"
    if request.root == Path("/") and runtime.is_dir():
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", UNIT_NAME)
        return True, f"enabled and started ({UNIT_NAME})"
    where = "below --root" if request.root != Path("/") else "here"
    if shutil.which("systemctl") is None:
        return False, f"not enabled: systemd is not running {where} and systemctl is missing"
    _systemctl(f"--root={request.root}", "enable", UNIT_NAME)
    return False, (
        f"enabled for the next boot, not started: systemd is not running {where} "
        "(start the agent by hand with `garrison-agent run`)"
    )


def install(
    request: Request,
    say: Callable[[str], None],
    runtime: Path = SYSTEMD_RUNTIME,
) -> Installed:
    if request.root == Path("/") and os.geteuid() != 0:
        raise UsageProblem("install needs root (or --root DIR to prepare another tree)")
    if not request.server.startswith(("http://", "https://")):
        raise UsageProblem(f"--server must start with https:// or http://: {request.server}")
    pin = fingerprint(request.ca_sha256)
    program = request.program or agent_program()
    state = StateDir(_inside(request.root, request.state_dir), explicit=True)
    unit = unit_text(program, request.state_dir)  # checked before anything is written
    agent = Agent(state, request.server, say=say)
    try:
        agent.config.server.url = request.server
        agent.config.server.ca_sha256 = pin
        agent.save_config()
        installation = _installation(state)
        creds = enrollment.run(agent, request.key, pin or None, installation=installation)
    finally:
        agent.close()
    state.write_json(
        state.path / "installation.json",
        {**installation, "server": request.server, "version": __version__, "program": program},
    )
    unit_path = _inside(request.root, UNIT_DIR) / UNIT_NAME
    try:
        unit_path.parent.mkdir(parents=True, exist_ok=True)
        unit_path.write_text(unit)
        unit_path.chmod(0o644)
    except OSError as exc:
        raise LocalError(f"cannot write the unit {unit_path}: {exc.strerror}") from None
    started, note = _service(request, runtime)
    return Installed(creds, unit_path, installation["id"], started, note)
