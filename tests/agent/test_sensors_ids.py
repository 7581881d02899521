"""The process sensor carries each process's real uid and gid instead of reading
``/proc/<pid>/status`` at every exec: from the forking thread to the child, changed by the
connector's UID/GID events.  Checked against the kernel's own answer with real processes
(root: the connector and set*id), and what carrying cannot know is read from /proc."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.sensors import procconn, procinfo
from garrison.agent.sensors.base import Sensor
from garrison.agent.sensors.hashes import HashCache
from garrison.agent.sensors.process import ProcessSensor
from tests.support import wait_for

NOBODY = 65534
needs_root = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="the process connector and set*id need root",
)


class Collect:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def allow(self, sensor: Sensor) -> bool:
        return True

    def submit(
        self, sensor: Sensor, event_type: str, data: dict[str, Any], event_id: str, when: float
    ) -> bool:
        self.events.append((event_type, data))
        return True

    def started(self, pid: int, image: str) -> list[dict[str, Any]]:
        return [
            d
            for kind, d in list(self.events)
            if kind == "process_started"
            and d["pid"] == pid
            and d.get("file_path", "").endswith(image)
            and not d.get("seen_at_start")
        ]


class StatusReads:
    """The pids whose status the sensor read (the rest were carried)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pids: list[int] = []
        real = procinfo.read_status_ids

        def counting(pid: int, dir_fd: int | None = None) -> tuple[int, int, int] | None:
            self.pids.append(pid)
            return real(pid, dir_fd)

        monkeypatch.setattr(procinfo, "read_status_ids", counting)


def _kernel_ids(pid: int) -> tuple[int, int]:
    """The real uid and gid, as the kernel shows them (not through the sensor's reader,
    which StatusReads counts)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


@pytest.fixture
def live() -> Iterator[tuple[ProcessSensor, Collect]]:
    sensor = ProcessSensor(HashCache(1 << 30, 1 << 30), [], 1 << 22)
    sink = Collect()
    if not sensor.start(sink):
        raise AssertionError(f"the process sensor did not start: {sensor.reason}")
    try:
        yield sensor, sink
    finally:
        sensor.stop()


@needs_root
def test_a_child_that_drops_to_nobody_before_exec_is_reported_as_nobody(
    live: tuple[ProcessSensor, Collect], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, sink = live
    reads = StatusReads(monkeypatch)
    # subprocess forks, then setregid/setreuid in the child, then execs: UID/GID events on
    # the child between its fork and its exec.
    child = subprocess.Popen(["/bin/sleep", "30"], user=NOBODY, group=NOBODY)
    try:
        (started,) = wait_for(lambda: sink.started(child.pid, "sleep"), what="sleep's start")
        assert _kernel_ids(child.pid) == (NOBODY, NOBODY)
        assert (started["uid"], started["gid"]) == (NOBODY, NOBODY)
        assert started["user"] == "nobody"
        assert child.pid not in reads.pids  # carried from the test, changed by the events
    finally:
        child.kill()
        child.wait()
    stopped = wait_for(
        lambda: [
            d for k, d in list(sink.events) if k == "process_stopped" and d["pid"] == child.pid
        ],
        what="sleep's stop",
    )
    assert (stopped[0]["uid"], stopped[0]["gid"]) == (NOBODY, NOBODY)


@needs_root
def test_a_process_that_changes_uid_after_exec_and_its_children(
    live: tuple[ProcessSensor, Collect], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root at its exec, then setgid/setuid, then a fork that execs and an exec of its own:
    both later images run as nobody."""
    _, sink = live
    reads = StatusReads(monkeypatch)
    script = (
        "import os, sys\n"
        "sys.stdin.readline()\n"  # exec'd and reported as root first
        f"os.setgid({NOBODY}); os.setuid({NOBODY})\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    os.execv('/bin/sleep', ['sleep', '30'])\n"
        "print(child, flush=True)\n"
        "os.execv('/bin/sleep', ['sleep', '31'])\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    grandchild = 0
    try:
        python = os.path.basename(os.path.realpath(sys.executable))
        (first,) = wait_for(lambda: sink.started(proc.pid, python), what="python's start")
        assert (first["uid"], first["gid"]) == (0, 0)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        grandchild = int(proc.stdout.readline())
        (again,) = wait_for(lambda: sink.started(proc.pid, "sleep"), what="the re-exec")
        (forked,) = wait_for(lambda: sink.started(grandchild, "sleep"), what="the child")
        assert _kernel_ids(proc.pid) == _kernel_ids(grandchild) == (NOBODY, NOBODY)
        assert (again["uid"], again["gid"]) == (NOBODY, NOBODY)
        assert (forked["uid"], forked["gid"]) == (NOBODY, NOBODY)
        assert again["command_line"] == "sleep 31"
        assert proc.pid not in reads.pids
        assert grandchild not in reads.pids
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        if grandchild:
            os.kill(grandchild, 9)


@needs_root
def test_a_set_uid_image_keeps_the_real_uid_of_its_caller(
    live: tuple[ProcessSensor, Collect],
) -> None:
    """The exec of a set-uid-root file changes the effective uid only (a UID event all
    the same): the real uid reported stays the caller's, as /proc says."""
    _, sink = live
    # A directory nobody may enter (pytest's tmp_path sits under a root-only one).
    place = Path(tempfile.mkdtemp(prefix="garrison-suid-", dir="/tmp"))
    place.chmod(0o755)
    image = place / "suid-sleep"
    shutil.copy("/bin/sleep", image)
    os.chown(image, 0, 0)
    image.chmod(0o4755)
    child = subprocess.Popen([str(image), "30"], user=NOBODY, group=NOBODY)
    try:
        (started,) = wait_for(lambda: sink.started(child.pid, "suid-sleep"), what="its start")
        status = Path(f"/proc/{child.pid}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        real, effective = (int(v) for v in uid_line.split()[1:3])
        if effective != 0:
            pytest.skip("set-uid is not honoured on this filesystem (nosuid)")
        assert real == started["uid"] == NOBODY
    finally:
        child.kill()
        child.wait()
        shutil.rmtree(place)


# -- what carrying cannot know: read from /proc ---------------------------------------------------


def _synthetic(monkeypatch: pytest.MonkeyPatch) -> tuple[ProcessSensor, Collect, StatusReads]:
    sensor = ProcessSensor(HashCache(1 << 30, 1 << 30), [], 1 << 20, needs_root=False)
    sink = Collect()
    sensor._sink = sink
    return sensor, sink, StatusReads(monkeypatch)


@pytest.fixture
def sleeper() -> Iterator[int]:
    child = subprocess.Popen(["/bin/sleep", "30"])
    try:
        wait_for(lambda: procinfo.read_cmdline(child.pid) == "/bin/sleep 30", what="its exec")
        yield child.pid
    finally:
        child.kill()
        child.wait()


def test_ids_are_carried_from_the_main_thread_and_changed_by_its_events(
    monkeypatch: pytest.MonkeyPatch, sleeper: int
) -> None:
    sensor, sink, reads = _synthetic(monkeypatch)
    me, child = os.getpid(), sleeper
    sensor.on_exec(procconn.Exec(1_000, me, me))
    assert me in reads.pids  # never seen forked: read (and its parent, once)
    reads.pids.clear()
    sensor.handle(procconn.Fork(2_000, me, me, child, child))
    # Not the real ids of the sleeper (the test's): what the events said must win.
    sensor.handle(procconn.IdChange(2_100, child, child, False, 1234, 0))
    sensor.handle(procconn.IdChange(2_200, child, child, True, 4321, 0))
    sensor.handle(procconn.Exec(3_000, child, child))
    assert reads.pids == []
    started = sink.started(child, "sleep")[0]
    assert (started["uid"], started["gid"]) == (1234, 4321)


def test_what_carrying_cannot_know_is_read(monkeypatch: pytest.MonkeyPatch, sleeper: int) -> None:
    sensor, sink, reads = _synthetic(monkeypatch)
    me, child = os.getpid(), sleeper
    real = _kernel_ids(child)
    sensor.on_exec(procconn.Exec(1_000, me, me))

    def exec_of_child(ts: int) -> dict[str, Any]:
        reads.pids.clear()
        sensor.handle(procconn.Exec(ts, child, child))
        assert reads.pids == [child], "the ids were carried where they had to be read"
        data = [d for k, d in sink.events if k == "process_started" and d["pid"] == child][-1]
        assert (data["uid"], data["gid"]) == real
        sensor.handle(procconn.Exit(ts + 1, child, child, 0, 17, me, me))
        return data

    # A fork the sensor never saw (the agent started later, or the event was lost).
    exec_of_child(2_000)
    # Forked by a thread other than the main one: it holds that thread's credentials.
    sensor.handle(procconn.Fork(3_000, me + 1, me, child, child))
    exec_of_child(3_100)
    # Seen forked by the main thread, then one of its own threads changed its credentials
    # (an exec from that thread would take them).
    sensor.handle(procconn.Fork(4_000, me, me, child, child))
    sensor.handle(procconn.IdChange(4_050, child + 1, child, False, 99, 99))
    exec_of_child(4_100)
    # The kernel dropped events: a UID event may be among them, so nothing is carried.
    sensor.handle(procconn.Fork(5_000, me, me, child, child))

    class Lossy:
        lost, overflows = 3, 0

    sensor._handle_all(Lossy(), [])  # type: ignore[arg-type]
    assert sensor.counters.snapshot()["overflows"] == 3
    exec_of_child(5_100)
    # A process followed, then its pid reused by a process whose fork was not seen.
    sensor.handle(procconn.Fork(6_000, me, me, child, child))
    sensor.handle(procconn.Exit(6_001, child, child, 0, 17, me, me))
    exec_of_child(6_100)
