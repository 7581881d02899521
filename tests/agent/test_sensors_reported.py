"""The process sensor's start snapshot: running processes no earlier run reported are
reported once (``seen_at_start``), what was reported is kept in the state dir, and an exec
the kernel queued before the snapshot read it is not reported a second time."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from garrison.agent.sensors import procconn, procinfo
from garrison.agent.sensors.base import Sensor
from garrison.agent.sensors.hashes import HashCache
from garrison.agent.sensors.process import ProcessSensor
from garrison.agent.sensors.reported import FILE_NAME, Reported, start_event_id
from garrison.common.catalogue import CATALOGUE, validate


class Collect:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], str]] = []

    def allow(self, sensor: Sensor) -> bool:
        return True

    def submit(
        self, sensor: Sensor, event_type: str, data: dict[str, Any], event_id: str, when: float
    ) -> bool:
        self.events.append((event_type, data, event_id))
        return True


def _sensor(state: Path) -> tuple[ProcessSensor, Collect]:
    sensor = ProcessSensor(HashCache(1 << 30, 1 << 30), [], 1 << 20, needs_root=False)
    sensor.use_state(state)
    sink = Collect()
    sensor._sink = sink
    return sensor, sink


def _mine(sink: Collect, pid: int) -> list[tuple[str, dict[str, Any], str]]:
    return [e for e in sink.events if e[1]["pid"] == pid]


def test_the_snapshot_reports_running_processes_once_across_restarts(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        first, sink = _sensor(tmp_path)
        first.snapshot()
        (kind, data, the_id), *_ = _mine(sink, child.pid) or [("", {}, "")]
        assert kind == "process_started"
        assert data["seen_at_start"] is True
        assert data["command_line"] == "sleep 30"
        assert the_id == start_event_id(data["unique_pid"], data["file_path"])
        for event_type, event_data, _ in sink.events:
            validate(CATALOGUE[event_type], event_data)
        # Kernel threads (no image, no command line) are not processes to report.
        assert all("file_path" in e[1] or "command_line" in e[1] for e in sink.events)
        first.reported.save()
        saved = json.loads((tmp_path / FILE_NAME).read_text())
        assert saved["boot_id"] == procinfo.boot_id()
        assert data["unique_pid"] in saved["live"]

        # The next start: what is still running was reported, and is not again ...
        second, again = _sensor(tmp_path)
        second.snapshot()
        assert not _mine(again, child.pid)
        # ... but one started while "the agent was down" is.
        late = subprocess.Popen(["sleep", "31"])
        try:
            third, sink3 = _sensor(tmp_path)
            third.snapshot()
            assert not _mine(sink3, child.pid)
            assert [e[1]["command_line"] for e in _mine(sink3, late.pid)] == ["sleep 31"]
        finally:
            late.kill()
            late.wait()
    finally:
        child.kill()
        child.wait()


def test_an_exit_forgets_the_process_and_another_boot_is_ignored(tmp_path: Path) -> None:
    me = os.getpid()
    sensor, _sink = _sensor(tmp_path)
    sensor.snapshot()
    record = sensor.table[me]
    assert record.unique_pid in sensor.reported.live
    sensor.on_exit(procconn.Exit(time.monotonic_ns(), me, me, 0, 17, None, None))
    assert record.unique_pid not in sensor.reported.live

    (tmp_path / FILE_NAME).write_text(json.dumps({"boot_id": "another", "live": {"x": "y"}}))
    assert Reported(tmp_path).load() == {}
    (tmp_path / FILE_NAME).write_text("not json")
    assert Reported(tmp_path).load() == {}


def test_an_exec_queued_before_the_snapshot_read_is_not_reported_twice(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        exec_ns = time.monotonic_ns()  # the kernel's stamp of an exec before the snapshot
        sensor, sink = _sensor(tmp_path)
        sensor.snapshot()
        assert len(_mine(sink, child.pid)) == 1
        sensor.handle(procconn.Exec(exec_ns, child.pid, child.pid))
        assert len(_mine(sink, child.pid)) == 1
        # An exec after the read is a new image: reported.
        sensor.handle(procconn.Exec(time.monotonic_ns(), child.pid, child.pid))
        started = _mine(sink, child.pid)
        assert len(started) == 2
        assert "seen_at_start" not in started[1][1]
    finally:
        child.kill()
        child.wait()
