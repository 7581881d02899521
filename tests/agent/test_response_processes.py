"""ListProcesses, KillProcess and the FindProcess hunt on real processes the tests start."""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.context import Agent
from garrison.agent.errors import JobError
from garrison.agent.jobs import codes, kill, processes
from garrison.agent.jobstore import Job
from garrison.agent.sensors import procinfo
from garrison.agent.state import Credentials, StateDir
from garrison.agent.tasks import runjobs


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Agent:
    monkeypatch.setenv("GARRISON_AGENT_UUID", "AAAAAAAA-0000-0000-0000-000000000017")
    state = StateDir(tmp_path / "state", explicit=True)
    agent = Agent(state, "http://127.0.0.1:9")
    state.save_credentials(Credentials(7, "tok", "http://127.0.0.1:9"))
    return agent


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        if p.stdout is not None:
            p.stdout.close()


def job(job_type: str, obj: dict[str, Any], job_id: int = 1) -> Job:
    return Job(job_id, job_type, 0, obj)


def run(agent: Agent, job_type: str, obj: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
    return runjobs.execute(agent, job(job_type, obj))


def alive(pid: int) -> bool:
    stat = procinfo.read_stat(pid)
    return stat is not None and stat.state not in ("Z", "X")


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def sleeper(started: list[subprocess.Popen[bytes]], *args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", *args])
    started.append(proc)
    return proc


def parent_and_child(started: list[subprocess.Popen[bytes]]) -> tuple[int, int]:
    """A shell whose child (a sleep) it waits for: the tree KillProcess takes down."""
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE)
    started.append(proc)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    return proc.pid, child


# -- ListProcesses / FindProcess ---------------------------------------------------------------


def test_list_processes_shows_a_started_process(
    agent: Agent, started: list[subprocess.Popen[bytes]]
) -> None:
    proc = sleeper(started, "garrison-list-marker")
    code, _, result = run(agent, "ListProcesses", {"investigation_id": "inv"})
    assert code == 0
    assert result is not None
    mine = [p for p in result["processes"] if p["pid"] == proc.pid]
    assert len(mine) == 1
    entry = mine[0]
    assert entry["ppid"] == os.getpid()
    assert "garrison-list-marker" in entry["cmdline"]
    assert entry["path"] == os.path.realpath(sys.executable)
    assert entry["uid"] == os.geteuid()
    assert entry["user"] == pwd.getpwuid(os.geteuid()).pw_name
    stat = procinfo.read_stat(proc.pid)
    assert stat is not None
    assert entry["unique_pid"] == procinfo.unique_pid(proc.pid, stat.start_ticks)
    assert abs(entry["start_time"] - time.time()) < 60
    assert result["truncated"] is False


def test_find_process_by_name_cmdline_and_hash(
    agent: Agent, started: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    binary = unique_sleep(tmp_path)
    proc = subprocess.Popen([str(binary), "300"])
    started.append(proc)
    sha = processes.exe_sha256(proc.pid)
    hunt = {"hunt_id": 3, "expires_at": int(time.time()) + 60}
    for question in (
        {"type": "FindProcess", "name": binary.name},
        {"type": "FindProcess", "cmdline": f"{binary} 300"},
        {"type": "FindProcess", "sha256": sha},
    ):
        code, message, result = run(agent, "Hunt", {**hunt, "question": question})
        assert code == 0, message
        assert result is not None
        assert result["found"] is True
        assert [p["pid"] for p in result["processes"]] == [proc.pid]
    nobody = {"type": "FindProcess", "name": "no-such-process-*"}
    code, _, result = run(agent, "Hunt", {**hunt, "question": nobody})
    assert code == 0
    assert result == {"found": False, "processes": []}
    code, _, _ = run(agent, "Hunt", {**hunt, "question": {"type": "FindProcess"}})
    assert code == codes.BAD_JOB


def unique_sleep(tmp_path: Path) -> Path:
    """A copy of sleep(1) with bytes appended: an image no other process on the machine
    runs, so a kill by hash hits only the tests' own."""
    binary = tmp_path / "garrison-sleep"
    shutil.copyfile(shutil.which("sleep") or "/bin/sleep", binary)
    with open(binary, "ab") as handle:
        handle.write(os.urandom(32))
    binary.chmod(0o755)
    return binary


# -- KillProcess -----------------------------------------------------------------------------


def test_kill_by_pid(agent: Agent, started: list[subprocess.Popen[bytes]]) -> None:
    proc = sleeper(started)
    code, message, result = run(agent, "KillProcess", {"pid": proc.pid})
    assert code == 0, message
    assert result is not None
    assert [k["pid"] for k in result["killed"]] == [proc.pid]
    assert result["killed"][0]["path"] == os.path.realpath(sys.executable)
    assert result["gone"] == []
    assert proc.wait(5) == -9


def test_kill_tree_kills_the_child_first_then_the_parent(
    agent: Agent, started: list[subprocess.Popen[bytes]]
) -> None:
    parent, child = parent_and_child(started)
    code, message, result = run(agent, "KillProcess", {"pid": parent, "tree": True})
    assert code == 0, message
    assert result is not None
    assert [k["pid"] for k in result["killed"]] == [child, parent]
    assert wait_dead(child)
    assert wait_dead(parent)


def test_kill_without_tree_leaves_the_child(
    agent: Agent, started: list[subprocess.Popen[bytes]]
) -> None:
    parent, child = parent_and_child(started)
    code, _, result = run(agent, "KillProcess", {"pid": parent})
    assert code == 0
    assert result is not None
    assert [k["pid"] for k in result["killed"]] == [parent]
    assert wait_dead(parent)
    assert alive(child)
    os.kill(child, 9)


def test_kill_by_unique_pid_and_by_hash(
    agent: Agent, started: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    proc = sleeper(started)
    found = processes.read(proc.pid)
    assert found is not None
    code, _, result = run(agent, "KillProcess", {"unique_pid": found.unique_pid})
    assert code == 0
    assert result is not None
    assert result["killed"][0]["unique_pid"] == found.unique_pid
    binary = unique_sleep(tmp_path)
    twins = [subprocess.Popen([str(binary), "300"]) for _ in range(2)]
    started.extend(twins)
    sha = processes.exe_sha256(twins[0].pid)
    code, message, result = run(agent, "KillProcess", {"sha256": sha})
    assert code == 0, message
    assert result is not None
    assert sorted(k["pid"] for k in result["killed"]) == sorted(t.pid for t in twins)


def test_kill_bad_targets(agent: Agent, started: list[subprocess.Popen[bytes]]) -> None:
    # A pid that does not exist: the pid of a process that has been reaped.
    proc = subprocess.Popen(["true"])
    proc.wait()
    code, message, result = run(agent, "KillProcess", {"pid": proc.pid})
    assert (code, result) == (codes.NOT_FOUND, None)
    assert f"no process with pid {proc.pid}" in message
    assert run(agent, "KillProcess", {"unique_pid": "boot-1-1"})[0] == codes.NOT_FOUND
    assert run(agent, "KillProcess", {"sha256": "0" * 64})[0] == codes.NOT_FOUND
    for protected in (1, os.getpid(), os.getppid()):
        code, message, _ = run(agent, "KillProcess", {"pid": protected})
        assert code == codes.REFUSED, message
        assert "refused" in message
    assert alive(os.getppid())
    for bad in ({}, {"pid": 5, "sha256": "0" * 64}, {"pid": "12"}, {"pid": 0},
                {"pid": 5, "tree": "yes"}, {"sha256": "xyz"}):  # fmt: skip
        assert run(agent, "KillProcess", bad)[0] == codes.BAD_JOB, bad


def test_a_process_that_exits_mid_kill_is_gone(
    agent: Agent, started: list[subprocess.Popen[bytes]]
) -> None:
    parent, child = parent_and_child(started)
    plan = kill.plan({"pid": parent, "tree": True})
    assert [p.pid for p in plan] == [child, parent]
    os.kill(child, 9)  # exits between the plan and the signal
    assert wait_dead(child)
    outcome = kill.execute(plan)
    assert outcome.gone == [child]
    assert [p.pid for p in outcome.killed] == [parent]


def test_a_reused_pid_is_not_signalled(started: list[subprocess.Popen[bytes]]) -> None:
    proc = sleeper(started)
    seen = processes.read(proc.pid)
    assert seen is not None
    # The same pid with another start time: what a pid reused since the plan looks like.
    impostor = processes.Process(**{**seen.to_json(), "unique_pid": seen.unique_pid + "0"})
    outcome = kill.execute([impostor])
    assert outcome.gone == [proc.pid]
    assert outcome.killed == []
    assert alive(proc.pid)


def test_kill_refused_job_error_carries_no_result() -> None:
    with pytest.raises(JobError) as caught:
        kill.plan({"pid": 1, "tree": True})
    assert caught.value.code == codes.REFUSED
    assert caught.value.result is None


def test_a_child_forked_after_the_plan_is_killed_with_the_tree(
    started: list[subprocess.Popen[bytes]],
) -> None:
    proc = subprocess.Popen(
        ["/bin/sh", "-c", "read go; sleep 300 & echo $!; wait"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    started.append(proc)
    assert proc.stdin is not None
    assert proc.stdout is not None
    plan = kill.plan({"pid": proc.pid, "tree": True})
    assert [p.pid for p in plan] == [proc.pid]  # no child yet
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    late = int(proc.stdout.readline())  # forked after the plan
    outcome = kill.execute(plan, tree=True)
    assert [p.pid for p in outcome.killed] == [late, proc.pid]
    assert wait_dead(late)


def test_kill_without_pidfd_still_checks_the_identity(
    started: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pidfd(pid: int) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    proc = sleeper(started)
    seen = processes.read(proc.pid)
    assert seen is not None
    impostor = processes.Process(**{**seen.to_json(), "unique_pid": seen.unique_pid + "0"})
    assert kill.execute([impostor]).gone == [proc.pid]
    assert [p.pid for p in kill.execute([seen]).killed] == [proc.pid]
    assert proc.wait(5) == -9
