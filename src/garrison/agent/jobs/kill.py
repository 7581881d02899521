"""KillProcess: by pid, by the sensors' UniquePID or by the SHA-256 of the image, optionally
with the whole tree (children first, then the parent).

Each process is signalled through a pidfd opened after its identity (its UniquePID: boot,
pid, start time) was checked again, so a pid reused since the snapshot is never hit.  A
process that exits before its signal is reported in ``gone``.  pid 1, the agent itself and
its ancestors are refused (code 11): killing them would take the agent down mid-job."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass, field

from garrison.agent.context import Agent
from garrison.agent.errors import JobError
from garrison.agent.jobs import codes, params, processes
from garrison.agent.jobs.params import Reply
from garrison.agent.jobs.processes import Process
from garrison.agent.jobstore import Job
from garrison.agent.sensors import procinfo

FRESH_ROUNDS = 3  # looks for children forked before their parent was stopped
REAP_WAIT = 5.0  # seconds for a SIGKILLed process to be gone before it is called a failure


@dataclass
class Outcome:
    killed: list[Process] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def protected() -> set[int]:
    """pid 1, this process and every ancestor of it."""
    out = {1}
    pid = os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        current = processes.read(pid)
        if current is None:
            break
        pid = current.ppid
    return out


def by_unique_pid(unique: str) -> Process | None:
    head, _, tail = unique.rpartition("-")
    pid_text = head.rpartition("-")[2]
    if not tail.isdigit() or not pid_text.isdigit():
        return None
    found = processes.read(int(pid_text))
    return found if found is not None and found.unique_pid == unique else None


def targets(obj: dict[str, object]) -> list[Process]:
    """The processes the job names (raises NOT_FOUND when none exists)."""
    which = params.exactly_one(obj, ("pid", "unique_pid", "sha256"))
    if which == "pid":
        pid = params.integer(obj, "pid", minimum=1)
        found = processes.read(pid)
        if found is None:
            raise JobError(f"no process with pid {pid}", codes.NOT_FOUND)
        return [found]
    if which == "unique_pid":
        unique = params.text(obj, "unique_pid", max_length=200)
        match = by_unique_pid(unique)
        if match is None:
            raise JobError(f"no running process has UniquePID {unique}", codes.NOT_FOUND)
        return [match]
    sha = params.sha256(obj)
    own = protected()
    hits = [p for p in processes.snapshot() if p.pid not in own and p.path]
    hits = [p for p in hits if processes.exe_sha256(p.pid) == sha]
    if not hits:
        raise JobError(f"no running process runs an image with SHA-256 {sha}", codes.NOT_FOUND)
    return hits


def with_descendants(roots: list[Process], snapshot: list[Process]) -> list[Process]:
    """The roots and their descendants, deepest first (a child before its parent)."""
    children: dict[int, list[Process]] = {}
    for process in snapshot:
        children.setdefault(process.ppid, []).append(process)
    order: list[Process] = []
    seen: set[int] = set()

    def visit(process: Process) -> None:
        if process.pid in seen:
            return
        seen.add(process.pid)
        for child in children.get(process.pid, []):
            visit(child)
        order.append(process)

    for root in roots:
        visit(root)
    return order


def plan(obj: dict[str, object]) -> list[Process]:
    """What the job will signal, in order; refuses a protected process."""
    roots = targets(obj)
    tree = params.boolean(obj, "tree")
    own = protected()
    refused = [p for p in roots if p.pid in own]
    if refused:
        who = refused[0]
        what = "pid 1" if who.pid == 1 else "the agent itself or one of its parents"
        raise JobError(f"refused to kill {what} (pid {who.pid}, {who.name})", codes.REFUSED)
    chosen = with_descendants(roots, processes.snapshot()) if tree else roots
    return [p for p in chosen if p.pid not in own]


def _signal(process: Process, signum: int) -> bool:
    """Signal ``process`` if it is still the process the plan saw; False when it is gone."""
    try:
        fd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return False
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
        return _signal_by_pid(process, signum)  # a kernel before 5.3: no pidfd
    try:
        if not _same(process):
            return False  # exited, and the pid maybe reused since
        try:
            signal.pidfd_send_signal(fd, signum)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(fd)


def _same(process: Process) -> bool:
    current = processes.read(process.pid)
    return current is not None and current.unique_pid == process.unique_pid


def _signal_by_pid(process: Process, signum: int) -> bool:
    """Without a pidfd the check and the signal are two steps: a pid reused in between is
    the (tiny) risk every kill(1) takes."""
    if not _same(process):
        return False
    try:
        os.kill(process.pid, signum)
    except ProcessLookupError:
        return False
    return True


def _reaped(process: Process, deadline: float) -> bool:
    """Gone (or a zombie: dead, waiting for its parent) before ``deadline``."""
    while True:
        current = processes.read(process.pid)
        if current is None or current.unique_pid != process.unique_pid:
            return True
        stat = procinfo.read_stat(process.pid)
        if stat is None or stat.state in ("Z", "X"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _stop(processes_: list[Process], outcome: Outcome) -> list[Process]:
    stopped = []
    for process in processes_:
        try:
            if _signal(process, signal.SIGSTOP):
                stopped.append(process)
            else:
                outcome.gone.append(process.pid)
        except PermissionError:
            outcome.failed.append((process.pid, "not permitted"))
    return stopped


def execute(plan_: list[Process], tree: bool = False) -> Outcome:
    """Stop every process of the plan first (a parent cannot fork a replacement while its
    children die), then SIGKILL them in order and wait until each is gone.  With ``tree``,
    a child forked between the plan and the stop is found and stopped too."""
    outcome = Outcome()
    order = list(plan_)
    stopped = _stop(list(reversed(order)), outcome)  # parents first
    for _ in range(FRESH_ROUNDS if tree else 0):
        known = {p.pid for p in order}
        own = protected()
        fresh = [
            p
            for p in with_descendants(stopped, processes.snapshot())
            if p.pid not in known and p.pid not in own
        ]
        if not fresh:
            break
        order = fresh + order  # descendants: killed before the parents they belong to
        stopped += _stop(list(reversed(fresh)), outcome)
    alive = {p.pid for p in stopped}
    for process in order:
        if process.pid not in alive:
            continue
        try:
            sent = _signal(process, signal.SIGKILL)
        except PermissionError:
            outcome.failed.append((process.pid, "not permitted"))
            continue
        if not sent:
            outcome.gone.append(process.pid)
        elif _reaped(process, time.monotonic() + REAP_WAIT):
            outcome.killed.append(process)
        else:
            outcome.failed.append((process.pid, f"still alive {REAP_WAIT:.0f} s after SIGKILL"))
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGCONT)
    return outcome


def handle(agent: Agent, job: Job) -> Reply:
    obj = params.obj(job)
    outcome = execute(plan(obj), params.boolean(obj, "tree"))
    result = {
        "killed": [
            {"pid": p.pid, "unique_pid": p.unique_pid, "path": p.path} for p in outcome.killed
        ],
        "gone": outcome.gone,
    }
    if outcome.failed:
        pid, why = outcome.failed[0]
        raise JobError(
            f"could not kill {len(outcome.failed)} process(es): pid {pid} {why}",
            codes.REFUSED,
            result={**result, "partial": True},
        )
    if not outcome.killed:
        return Reply("the process(es) exited before they were signalled", result)
    return Reply(f"killed {len(outcome.killed)} process(es), {len(outcome.gone)} gone", result)
