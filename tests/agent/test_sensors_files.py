"""The file, driver and module sensors' parts, without the kernel: fanotify records,
exclusions, the /proc/modules diff, maps parsing and the (image, library) dedupe."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.config import SensorsConfig
from garrison.agent.sensors import fanotify, procinfo
from garrison.agent.sensors.base import Sensor, SensorState
from garrison.agent.sensors.drivers import (
    DriverSensor,
    Module,
    diff,
    module_name,
    parse_modules,
    parse_modules_dep,
)
from garrison.agent.sensors.fanotify import FanEvent, Fid
from garrison.agent.sensors.files import FileSensor, watched
from garrison.agent.sensors.hashes import HashCache
from garrison.agent.sensors.modules import Lru, ModuleSensor, parse_maps
from garrison.agent.sensors.process import ProcessRecord, ProcessSensor
from garrison.agent.sensors.runner import SensorRunner
from garrison.agent.spool import Spool
from garrison.common.catalogue import CATALOGUE, validate


class Collect:
    def __init__(self, allowed: int = 1 << 30) -> None:
        self.events: list[tuple[str, dict[str, Any], str]] = []
        self.allowed = allowed

    def allow(self, sensor: Sensor) -> bool:
        if self.allowed <= 0:
            sensor.counters.add("dropped_rate_limit")
            return False
        self.allowed -= 1
        return True

    def submit(
        self, sensor: Sensor, event_type: str, data: dict[str, Any], event_id: str, when: float
    ) -> bool:
        validate(CATALOGUE[event_type], data)
        self.events.append((event_type, data, event_id))
        return True


def _hashes() -> HashCache:
    return HashCache(1 << 23, 1 << 30)


# -- fanotify records ---------------------------------------------------------------------------


def _fid_record(info_type: int, fsid: tuple[int, int], handle: bytes, name: str | None) -> bytes:
    body = struct.pack("=ii", *fsid) + struct.pack("=Ii", len(handle), 1) + handle
    if name is not None:
        body += name.encode() + b"\x00"
    body += b"\x00" * (-(len(body) + 4) % 4)  # the kernel pads records to 4 bytes
    return struct.pack("=BBH", info_type, 0, 4 + len(body)) + body


def _event(mask: int, pid: int, *records: bytes) -> bytes:
    payload = b"".join(records)
    return struct.pack("=IBBHQii", 24 + len(payload), 3, 0, 24, mask, -1, pid) + payload


def test_parse_dfid_name_events_overflow_and_a_truncated_tail() -> None:
    handle = bytes(range(8))
    create = _event(
        fanotify.FAN_CREATE,
        4242,
        _fid_record(fanotify.FAN_EVENT_INFO_TYPE_DFID_NAME, (7, -2), handle, "evil.sh"),
    )
    close = _event(
        fanotify.FAN_CLOSE_WRITE | fanotify.FAN_ONDIR,
        17,
        _fid_record(fanotify.FAN_EVENT_INFO_TYPE_DFID_NAME, (7, -2), handle, "d"),
        _fid_record(fanotify.FAN_EVENT_INFO_TYPE_FID, (7, -2), b"\x01\x02\x03\x04", None),
    )
    overflow = struct.pack("=IBBHQii", 24, 3, 0, 24, fanotify.FAN_Q_OVERFLOW, -1, 0)
    buf = create + close + overflow + create[:30]  # the last one cut short
    first, second, third = fanotify.parse_events(buf)
    assert first.mask == fanotify.FAN_CREATE
    assert first.pid == 4242
    entry = first.dir_entry()
    assert entry is not None
    assert entry.name == "evil.sh"
    assert entry.fsid == fanotify.fsid_key(7, -2) == 7 | (0xFFFFFFFE << 32)
    # The handle is a whole struct file_handle: handle_bytes, handle_type, f_handle.
    assert entry.handle == struct.pack("=Ii", 8, 1) + handle
    assert [f.info_type for f in second.fids] == [2, 1]
    assert second.fids[1].name is None
    assert third.overflow
    assert not third.fids
    # Nonsense from a bug elsewhere never crashes the reader.
    assert fanotify.parse_events(b"\x00" * 10) == []
    assert fanotify.parse_events(struct.pack("=IBBHQii", 4, 3, 0, 24, 1, -1, 1)) == []


def test_fsid_matches_statvfs_of_the_filesystem(tmp_path: Path) -> None:
    """The record's fsid is found again through os.statvfs (the mount descriptor map)."""
    value = os.statvfs(tmp_path).f_fsid
    low, high = value & 0xFFFFFFFF, value >> 32
    as_int = struct.unpack("=ii", struct.pack("=II", low, high))
    assert fanotify.fsid_key(*as_int) == value


def test_the_sensor_never_asks_for_permission_events() -> None:
    from garrison.agent.sensors import files

    perm = 0x00010000 | 0x00020000 | 0x00040000  # FAN_OPEN_PERM, ACCESS_PERM, OPEN_EXEC_PERM
    assert files.EVENT_MASK & perm == 0
    assert files.INIT_FLAGS & 0x0C == 0  # FAN_CLASS_CONTENT / FAN_CLASS_PRE_CONTENT


# -- the file sensor's logic --------------------------------------------------------------------


def _file_sensor(root: Path, exclude: list[str] | None = None) -> tuple[FileSensor, Collect]:
    sensor = FileSensor(_hashes(), [str(root)], exclude or [], hash_wait=5.0)
    sensor.roots = [str(root)]
    sink = Collect()
    sensor._sink = sink
    sensor.resolve_dir = lambda fid: str(root / fid.handle.decode())  # type: ignore[method-assign]
    return sensor, sink


def _fan(mask: int, directory: str, name: str, pid: int | None = None) -> FanEvent:
    fid = Fid(fanotify.FAN_EVENT_INFO_TYPE_DFID_NAME, 1, directory.encode(), name)
    return FanEvent(mask, os.getpid() + 1 if pid is None else pid, (fid,))


def test_created_then_closed_is_one_event_with_hashes_owner_and_creator(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    sensor, sink = _file_sensor(tmp_path)
    target = tmp_path / "sub" / "dropper.bin"
    target.write_bytes(b"payload")
    sensor.handle(_fan(fanotify.FAN_CREATE, "sub", "dropper.bin", pid=os.getppid()))
    assert sink.events == []  # waits for close-write
    sensor.handle(_fan(fanotify.FAN_CLOSE_WRITE, "sub", "dropper.bin"))
    sensor.handle(_fan(fanotify.FAN_CLOSE_WRITE, "sub", "dropper.bin"))  # a rewrite: not new
    ((kind, data, _eid),) = sink.events
    assert kind == "file_created"
    assert data["file_path"] == str(target)
    assert data["file_name"] == "dropper.bin"
    assert data["sha256"] == hashlib.sha256(b"payload").hexdigest()
    assert data["md5"] == hashlib.md5(b"payload").hexdigest()
    assert data["size"] == 7
    assert data["file_type"] == "file"
    assert data["file_owner"] == procinfo.user_name(os.getuid())
    assert data["file_permissions"] == f"{target.stat().st_mode & 0o7777:04o}"
    assert data["pid"] == os.getppid()
    assert data["unique_pid"].startswith(procinfo.boot_id())
    assert data["hash_status"] == "ok"


def test_exclusions_outside_roots_own_pid_and_directories(tmp_path: Path) -> None:
    sensor, sink = _file_sensor(tmp_path, exclude=["*.swp", f"{tmp_path}/cache"])
    (tmp_path / "cache").mkdir()
    (tmp_path / "x.swp").write_text("x")
    (tmp_path / "cache" / "c").write_text("c")
    both = fanotify.FAN_CREATE | fanotify.FAN_CLOSE_WRITE  # merged by the kernel
    sensor.handle(_fan(both, "", "x.swp"))
    sensor.handle(_fan(both, "cache", "c"))
    sensor.handle(_fan(both, "", "mine", pid=os.getpid()))  # the agent's own files
    sensor.roots = [str(tmp_path / "elsewhere")]
    sensor.handle(_fan(both, "", "outside"))
    assert sink.events == []
    sensor.roots = [str(tmp_path)]
    (tmp_path / "newdir").mkdir()
    sensor.handle(_fan(fanotify.FAN_CREATE | fanotify.FAN_ONDIR, "", "newdir"))
    ((_, data, _),) = sink.events
    assert data["file_type"] == "directory"
    assert "sha256" not in data
    assert watched("/tmp/a", ["/tmp"])
    assert not watched("/tmpx/a", ["/tmp"])


def test_still_open_gone_overflow_and_rate_limit_are_reported_or_counted(tmp_path: Path) -> None:
    sensor, sink = _file_sensor(tmp_path)
    (tmp_path / "log").write_text("growing")
    sensor.handle(_fan(fanotify.FAN_CREATE, "", "log"))
    sensor.flush(now=sensor.pending[next(iter(sensor.pending))].created + 6)
    ((_, data, _),) = sink.events
    assert data["hash_status"] == "still_open"
    assert "sha256" not in data
    # Created and removed before it was read: still reported, by name.
    sensor.handle(_fan(fanotify.FAN_CREATE | fanotify.FAN_CLOSE_WRITE, "", "ghost"))
    assert sink.events[-1][1]["unavailable"] == "file"
    overflow = FanEvent(fanotify.FAN_Q_OVERFLOW, 0, ())
    sensor.handle(overflow)
    assert sensor.counters.overflows == 1
    sink.allowed = 0
    sensor.handle(_fan(fanotify.FAN_CREATE, "", "log"))
    assert sensor.counters.dropped_rate_limit == 1
    assert not sensor.pending


def test_missing_paths_are_named_and_no_path_at_all_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    sensor = FileSensor(_hashes(), [str(tmp_path)], [])
    assert sensor.start(Collect()) is False
    assert sensor.reason == "needs root"
    sensor = FileSensor(_hashes(), [], [], needs_root=False)
    assert sensor.start(Collect()) is False
    assert "no watched paths" in sensor.reason
    sensor = FileSensor(_hashes(), [str(tmp_path / "nope")], [], needs_root=False)
    assert sensor.start(Collect()) is False
    assert sensor.state == SensorState.FAILED
    assert str(tmp_path / "nope") in sensor.reason


# -- drivers --------------------------------------------------------------------------------------

MODULES = """\
xfs 1871872 1 - Live 0xffffffffc0a00000
snd_hda_intel 57344 3 - Live 0xffffffffc0900000 (E)
garbage line
"""


def test_proc_modules_diff_new_and_reloaded() -> None:
    before = parse_modules(MODULES)
    assert set(before) == {"xfs", "snd_hda_intel"}
    assert before["xfs"] == Module("xfs", 1871872, "0xffffffffc0a00000", "Live")
    after = dict(before)
    after["evil"] = Module("evil", 16384, "0xffffffffc0b00000", "Live")
    after["xfs"] = Module("xfs", 1871872, "0xffffffffc0c00000", "Live")  # unloaded, reloaded
    del after["snd_hda_intel"]
    assert sorted(m.name for m in diff(before, after)) == ["evil", "xfs"]
    assert diff(after, after) == []


def test_modules_dep_names() -> None:
    dep = "kernel/sound/pci/hda/snd-hda-intel.ko.zst: kernel/sound/core/snd.ko.zst\n"
    dep += "/opt/extra/evil.ko:\nnot a module\nupdates/xfs.ko.xz:\n"
    paths = parse_modules_dep(dep, "/lib/modules/6.1")
    assert paths == {
        "snd_hda_intel": "/lib/modules/6.1/kernel/sound/pci/hda/snd-hda-intel.ko.zst",
        "evil": "/opt/extra/evil.ko",
        "xfs": "/lib/modules/6.1/updates/xfs.ko.xz",
    }
    assert module_name("a/b/c-d.ko.gz") == "c_d"
    assert module_name("README") is None


def test_driver_sensor_on_a_fake_proc_and_modules_tree(tmp_path: Path) -> None:
    proc_modules = tmp_path / "modules"
    proc_modules.write_text(MODULES)
    root = tmp_path / "lib" / "6.1"
    (root / "kernel").mkdir(parents=True)
    ko = root / "kernel" / "evil.ko"
    ko.write_bytes(b"\x7fELF evil module")
    (root / "modules.dep").write_text("kernel/xfs.ko.zst:\n")
    sink = Collect()
    sensor = DriverSensor(_hashes(), 3600, str(proc_modules), str(root), boot="boot-1")
    assert sensor.start(sink)
    try:
        # The modules present at start are reported once, flagged, without a file here.
        assert sorted(d["module_name"] for _, d, _ in sink.events) == ["snd_hda_intel", "xfs"]
        assert all(
            d["seen_at_start"] and d["unavailable"] == "file_path" for _, d, _ in sink.events
        )
        ids_at_start = [eid for _, _, eid in sink.events]
        (root / "modules.dep").write_text("kernel/xfs.ko.zst:\nkernel/evil.ko:\n")
        proc_modules.write_text(MODULES + "evil 16384 0 - Live 0xffffffffc0b00000 (OE)\n")
        sensor.check(sensor.read())
        _, data, _ = sink.events[-1]
        assert data["module_name"] == "evil"
        assert "seen_at_start" not in data
        assert data["file_path"] == str(ko)
        assert data["file_name"] == "evil.ko"
        assert data["sha256"] == hashlib.sha256(ko.read_bytes()).hexdigest()
        assert data["size"] == ko.stat().st_size
        assert data["module_memory_size"] == 16384
    finally:
        sensor.stop()
    # A restart reports what is loaded with the ids of the first run: stored once.
    again = Collect()
    restarted = DriverSensor(_hashes(), 3600, str(proc_modules), str(root), boot="boot-1")
    assert restarted.start(again)
    restarted.stop()
    assert set(ids_at_start) < {eid for _, _, eid in again.events}
    assert {eid for _, _, eid in again.events} == {eid for _, _, eid in sink.events}


def test_driver_sensor_without_proc_modules_fails_with_the_reason(tmp_path: Path) -> None:
    sensor = DriverSensor(_hashes(), 1, str(tmp_path / "none"), str(tmp_path))
    assert sensor.start(Collect()) is False
    assert "kernel without loadable modules" in sensor.reason


# -- modules (shared libraries) --------------------------------------------------------------

MAPS = """\
55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 1234 /opt/probe
55d0c0a02000-55d0c0a06000 r-xp 00002000 fd:01 1234 /opt/probe
7f0000000000-7f0000100000 r-xp 00028000 fd:01 200 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000100000-7f0000200000 r--p 00128000 fd:01 200 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000300000-7f0000301000 r-xp 00000000 fd:01 300 /tmp/my lib (x).so (deleted)
7f0000400000-7f0000500000 r--p 00000000 fd:01 400 /usr/lib/locale/locale-archive
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
"""


def test_parse_maps_keeps_executable_file_mappings_once() -> None:
    assert [(m.path, m.inode) for m in parse_maps(MAPS)] == [
        ("/opt/probe", 1234),
        ("/usr/lib/x86_64-linux-gnu/libc.so.6", 200),
        ("/tmp/my lib (x).so", 300),
    ]


def test_lru_is_bounded() -> None:
    lru = Lru(2)
    assert lru.add(("a",))
    assert lru.add(("b",))
    assert not lru.add(("a",))
    assert lru.add(("c",))  # forgets b, the oldest
    assert len(lru) == 2
    assert lru.add(("b",))


def _record(pid: int, image: Path, hashes: HashCache) -> ProcessRecord:
    facts = hashes.facts(str(image))
    return ProcessRecord(pid, f"boot-{pid}-1", 1.0, str(image), str(image), facts, uid=0)


def test_libraries_are_reported_once_per_image_and_library_hash(tmp_path: Path) -> None:
    hashes = _hashes()
    image = tmp_path / "probe"
    image.write_bytes(b"image")
    lib = tmp_path / "libfoo.so.1"
    lib.write_bytes(b"library")
    fake_proc = tmp_path / "proc"
    for pid in (100, 101):
        (fake_proc / str(pid)).mkdir(parents=True)
        ino, lino = image.stat().st_ino, lib.stat().st_ino
        (fake_proc / str(pid) / "maps").write_text(
            f"1000-2000 r-xp 0 fd:01 {ino} {image}\n3000-4000 r-xp 0 fd:01 {lino} {lib}\n"
        )
    sensor = ModuleSensor(hashes, proc=str(fake_proc))
    sink = Collect()
    sensor._sink = sink
    assert sensor.scan(_record(100, image, hashes)) == 1
    assert sensor.scan(_record(101, image, hashes)) == 0  # the same image: nothing new
    assert sensor.scan(_record(100, image, hashes)) == 0  # the late re-read
    ((kind, data, eid),) = sink.events
    assert kind == "module_loaded"
    assert data["dll_name"] == "libfoo.so.1"
    assert data["dll_path"] == str(lib)
    assert data["dll_sha256"] == hashlib.sha256(b"library").hexdigest()
    assert data["process_sha256"] == hashlib.sha256(b"image").hexdigest()
    assert data["unique_pid"] == "boot-100-1"
    # Another image loading the same library is new; a fresh sensor (a restart) gives the
    # same id for the same pair, so the server stores it once.
    other = tmp_path / "other"
    other.write_bytes(b"other image")
    (fake_proc / "102").mkdir()
    (fake_proc / "102" / "maps").write_text(
        f"1000-2000 r-xp 0 fd:01 {other.stat().st_ino} {other}\n"
        f"3000-4000 r-xp 0 fd:01 {lib.stat().st_ino} {lib}\n"
    )
    assert sensor.scan(_record(102, other, hashes)) == 1
    fresh = ModuleSensor(hashes, proc=str(fake_proc))
    fresh_sink = Collect()
    fresh._sink = fresh_sink
    fresh.scan(_record(100, image, hashes))
    assert fresh_sink.events[0][2] == eid


def test_module_sensor_hooks_the_process_sensor_and_fails_without_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    runner = SensorRunner(SensorsConfig(process=False, file=False), spool, lambda *_: None)
    process = next(s for s in runner.sensors if isinstance(s, ProcessSensor))
    module = next(s for s in runner.sensors if isinstance(s, ModuleSensor))
    assert module.source is process
    assert process._exec_observers == [module.on_exec]
    runner.start()
    try:
        assert module.state == SensorState.FAILED
        assert module.reason.startswith("needs the process sensor, which is disabled")
    finally:
        runner.stop()
        spool.close()
