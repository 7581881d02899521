"""Fields of the Linux sensors' events: the birth time (statx) as ``created_at``, the domain
of a directory account, and the catalogue's record of what the Linux agent never fills."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.sensors import fanotify, procconn, procinfo, statx
from garrison.agent.sensors.authparse import user_domain
from garrison.agent.sensors.hashes import HashCache
from garrison.agent.sensors.process import ProcessSensor
from garrison.common.catalogue import CATALOGUE, validate
from garrison.common.catalogue_doc import render
from garrison.common.catalogue_telemetry import LINUX_NOT_FILLED
from tests.agent.test_sensors_files import _fan, _file_sensor
from tests.agent.test_sensors_reported import Collect

SHM = Path("/dev/shm")


def _records_birth(directory: Path) -> bool:
    probe = directory / f"garrison-btime-{os.getpid()}"
    probe.write_bytes(b"")
    try:
        return statx.birth_time(str(probe)) is not None
    finally:
        probe.unlink()


def test_statx_reads_a_birth_time_and_never_invents_one(tmp_path: Path) -> None:
    assert statx.available()
    assert statx.birth_time(str(tmp_path / "missing")) is None
    if not SHM.is_dir() or not _records_birth(SHM):
        pytest.skip("no filesystem here records birth times (tmpfs on /dev/shm does)")
    before = time.time()
    path = SHM / f"garrison-born-{os.getpid()}"
    path.write_bytes(b"x")
    try:
        born = statx.birth_time(str(path))
        assert born is not None
        assert before - 1 <= born <= time.time() + 1
        os.utime(path, (1_000_000, 1_000_000))  # mtime moves; the birth time does not
        assert statx.birth_time(str(path)) == born
        fd = os.open(path, os.O_RDONLY)
        try:
            assert statx.birth_time_fd(fd) == born
        finally:
            os.close(fd)
        # The hash cache carries it into process, module and driver events.
        facts = HashCache(1 << 20, 1 << 30).facts(str(path))
        assert facts is not None
        assert facts.btime == born
    finally:
        path.unlink()


def test_file_created_has_the_birth_time_and_the_creators_user() -> None:
    if not SHM.is_dir() or not _records_birth(SHM):
        pytest.skip("no filesystem here records birth times (tmpfs on /dev/shm does)")
    root = SHM / f"garrison-files-{os.getpid()}"
    root.mkdir()
    try:
        sensor, sink = _file_sensor(root)
        target = root / "made"
        target.write_bytes(b"payload")
        born = statx.birth_time(str(target))
        time.sleep(0.05)  # the sensor's own clock is later than the birth
        both = fanotify.FAN_CREATE | fanotify.FAN_CLOSE_WRITE
        sensor.handle(_fan(both, "", "made", pid=os.getppid()))
        sensor.handle(_fan(both, "", "made2", pid=os.getppid()))  # gone: not created
        ((_, data, _), (_, ghost, _)) = sink.events
        assert data["created_at"] == born
        parent_uid = os.stat(f"/proc/{os.getppid()}").st_uid
        assert data["user"] == procinfo.user_name(parent_uid)
        assert ghost["unavailable"] == "file"
    finally:
        for child in root.iterdir():
            child.unlink()
        root.rmdir()


def test_the_domain_of_a_directory_account() -> None:
    assert user_domain("alice@EXAMPLE.COM") == "EXAMPLE.COM"
    assert user_domain("EXAMPLE\\alice") == "EXAMPLE"
    assert user_domain("alice") is None
    assert user_domain("alice@") is None


def test_what_the_linux_agent_never_fills_is_declared_and_documented() -> None:
    doc = render()
    for event_type, fields in LINUX_NOT_FILLED.items():
        declared = {f.name for f in CATALOGUE[event_type].fields}
        assert set(fields) <= declared, (event_type, set(fields) - declared)
        for reason in fields.values():
            assert f"**Linux agent:** {reason}" in doc
    for name in ("signer", "signature_valid"):
        assert "Authenticode" in LINUX_NOT_FILLED["process_started"][name]
    assert "Authenticode" in LINUX_NOT_FILLED["module_loaded"]["dll_signer"]


def test_the_process_sensor_fills_nothing_it_documents_as_never_filled() -> None:
    """The exec and exit of this very process, as the sensor builds them."""
    sink = Collect()
    sensor = ProcessSensor(HashCache(1 << 30, 1 << 30), [], 1 << 20, needs_root=False)
    sensor._sink = sink
    me = os.getpid()
    sensor.on_exec(procconn.Exec(time.monotonic_ns(), me, me))
    sensor.on_exit(procconn.Exit(time.monotonic_ns(), me, me, 0, 17, None, None))
    events: dict[str, dict[str, Any]] = {kind: data for kind, data, _ in sink.events}
    for kind, data in events.items():
        validate(CATALOGUE[kind], data)
        assert not set(data) & set(LINUX_NOT_FILLED[kind]), kind
    executable = os.readlink(f"/proc/{me}/exe")
    born = statx.birth_time(executable)
    if born is not None:
        assert events["process_started"]["created_at"] == born
