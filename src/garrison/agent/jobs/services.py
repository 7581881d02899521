"""ListServices: the systemd service units (``systemctl list-units --type=service --all
--output=json``).  A station without systemd as its init (a container, as CI's) fails the
job with that reason rather than an empty list that would read as "no services"."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from garrison.agent.context import Agent
from garrison.agent.errors import JobError
from garrison.agent.jobs import codes
from garrison.agent.jobs.params import Reply
from garrison.agent.jobstore import Job

# sd_booted(3): systemd is the running init exactly when this directory exists.
SYSTEMD_RUNTIME = Path("/run/systemd/system")
TIMEOUT = 30.0
MAX_SERVICES = 20_000


def parse(output: str) -> list[dict[str, Any]]:
    try:
        units = json.loads(output or "[]")
    except ValueError:
        raise JobError("systemctl's answer is not JSON", codes.FAILED) from None
    if not isinstance(units, list):
        raise JobError("systemctl's answer is not a list of units", codes.FAILED)
    return [
        {
            "name": str(u.get("unit", "")),
            "description": str(u.get("description", "")),
            "load": str(u.get("load", "")),
            "active": str(u.get("active", "")),
            "sub": str(u.get("sub", "")),
        }
        for u in units
        if isinstance(u, dict)
    ]


def list_services(agent: Agent, job: Job, runtime: Path = SYSTEMD_RUNTIME) -> Reply:
    if not runtime.is_dir():
        raise JobError(
            f"systemd is not running on this station ({runtime} is missing): no service list",
            codes.FAILED,
        )
    program = shutil.which("systemctl")
    if program is None:
        raise JobError("systemctl is not installed on this station", codes.FAILED)
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv, no shell
            [program, "list-units", "--type=service", "--all", "--output=json", "--no-pager"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "SYSTEMD_COLORS": "0"},
        )
    except subprocess.TimeoutExpired:
        raise JobError(f"systemctl did not answer in {TIMEOUT:.0f} s", codes.TIMEOUT) from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[0][:300]
        raise JobError(f"systemctl failed ({done.returncode}): {reason}", codes.FAILED)
    services = parse(done.stdout)
    return Reply(
        f"{len(services)} service(s)",
        {"services": services[:MAX_SERVICES], "truncated": len(services) > MAX_SERVICES},
    )
