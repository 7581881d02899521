"""ListProcesses, and what KillProcess and the FindProcess hunt read about processes: one
``/proc`` snapshot, with the sensors' UniquePID (:func:`procinfo.unique_pid`)."""

from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import asdict, dataclass
from typing import Any

from garrison.agent.context import Agent
from garrison.agent.jobs.params import Reply
from garrison.agent.jobstore import Job
from garrison.agent.sensors import procinfo

MAX_PROCESSES = 100_000  # far past any real host; bounds a job's memory
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    unique_pid: str
    name: str
    path: str
    cmdline: str
    user: str
    uid: int
    start_time: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read(pid: int) -> Process | None:
    """The process ``pid`` now; None when it does not exist (or exited while read)."""
    stat = procinfo.read_stat(pid)
    if stat is None:
        return None
    ids = procinfo.read_ids(pid)
    uid = ids.uid if ids else -1
    return Process(
        pid=pid,
        ppid=stat.ppid,
        unique_pid=procinfo.unique_pid(pid, stat.start_ticks),
        name=stat.comm,
        path=procinfo.read_link(pid, "exe") or "",
        cmdline=procinfo.read_cmdline(pid) or "",
        user=procinfo.user_name(uid) if uid >= 0 else "",
        uid=uid,
        start_time=int(stat.start_time),
    )


def pids() -> list[int]:
    try:
        return sorted(int(p) for p in os.listdir(procinfo.PROC) if p.isdigit())[:MAX_PROCESSES]
    except OSError:
        return []


def snapshot() -> list[Process]:
    return [p for p in (read(pid) for pid in pids()) if p is not None]


def exe_sha256(pid: int) -> str | None:
    """SHA-256 of the image the process runs (through ``/proc/<pid>/exe``: the very file,
    even deleted or replaced since); None for a kernel thread or an image not ours to read."""
    try:
        fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    digest = hashlib.sha256()
    try:
        while chunk := os.read(fd, HASH_CHUNK):
            digest.update(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return digest.hexdigest()


def image_name(process: Process) -> str:
    return os.path.basename(process.path.removesuffix(" (deleted)")) if process.path else ""


def matches(process: Process, name: str | None, cmdline: str | None, sha256: str | None) -> bool:
    """The FindProcess question: every criterion given holds (``name`` an fnmatch pattern on
    the command name or the image's file name, ``cmdline`` a substring)."""
    if name is not None and not (
        fnmatch.fnmatchcase(process.name, name) or fnmatch.fnmatchcase(image_name(process), name)
    ):
        return False
    if cmdline is not None and cmdline not in process.cmdline:
        return False
    return sha256 is None or exe_sha256(process.pid) == sha256


def list_processes(agent: Agent, job: Job) -> Reply:
    found = snapshot()
    return Reply(
        f"{len(found)} process(es)",
        {"processes": [p.to_json() for p in found], "truncated": len(found) >= MAX_PROCESSES},
    )
