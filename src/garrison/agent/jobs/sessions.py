"""ListSessions: the open login sessions, from utmp (the terminal sensor's parser)."""

from __future__ import annotations

import os
from pathlib import Path

from garrison.agent.context import Agent
from garrison.agent.errors import JobError
from garrison.agent.jobs import codes
from garrison.agent.jobs.params import Reply
from garrison.agent.jobstore import Job
from garrison.agent.sensors.utmp import MAX_RECORDS, UTMP, parse_utmp, sessions


def read_sessions(path: Path) -> list[dict[str, object]]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_RECORDS * UTMP.size)
    except FileNotFoundError:
        return []  # no utmp: nobody logged in through a terminal since boot
    except OSError as exc:
        raise JobError(f"{path}: {exc.strerror or exc}", codes.FAILED) from None
    live = sorted(sessions(parse_utmp(data)).values(), key=lambda r: r.time)
    return [
        {
            "user": r.user,
            "tty": r.line,
            "host": r.host or r.address or "",
            "pid": r.pid,
            "login_time": int(r.time),
        }
        for r in live
        # A record whose process is gone is a session utmp forgot to close (a crash).
        if r.pid <= 0 or os.path.exists(f"/proc/{r.pid}")
    ]


def list_sessions(agent: Agent, job: Job) -> Reply:
    found = read_sessions(Path(agent.config.sensors.utmp_path))
    return Reply(f"{len(found)} session(s)", {"sessions": found, "truncated": False})
