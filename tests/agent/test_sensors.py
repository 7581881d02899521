"""The agent's sensor framework and the process sensor's parts, without the kernel."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.config import SensorsConfig
from garrison.agent.sensors import procconn, procinfo
from garrison.agent.sensors.base import Sensor, SensorState, Sink
from garrison.agent.sensors.emitter import Emitter
from garrison.agent.sensors.hashes import HashCache
from garrison.agent.sensors.process import ProcessSensor, event_id
from garrison.agent.sensors.ratelimit import TokenBucket
from garrison.agent.sensors.runner import SensorRunner
from garrison.agent.spool import Spool, SpoolEvent
from garrison.common.catalogue import CATALOGUE, validate
from tests.support import wait_for

# -- the kernel's struct layouts --------------------------------------------------------------


def _datagram(what: int, body: bytes, ts: int = 123_456_789) -> bytes:
    event = struct.pack("=IIQ", what, 1, ts) + body
    cn = struct.pack("=IIIIHH", 1, 1, 7, 0, len(event), 0) + event
    return struct.pack("=IHHII", 16 + len(cn), 3, 0, 7, 0) + cn


def test_listen_message_is_nlmsghdr_cn_msg_and_op() -> None:
    msg = procconn.listen_message()
    assert len(msg) == 16 + 20 + 4
    length, kind, flags, _seq, pid = struct.unpack_from("=IHHII", msg)
    assert (length, kind, flags, pid) == (40, 3, 0, 0)
    idx, val, _s, ack, size, _f = struct.unpack_from("=IIIIHH", msg, 16)
    assert (idx, val, ack, size) == (1, 1, 0, 4)
    assert struct.unpack_from("=I", msg, 36) == (procconn.PROC_CN_MCAST_LISTEN,)


def test_parse_exec_fork_exit_and_ack() -> None:
    (exec_,) = procconn.parse_datagram(_datagram(0x2, struct.pack("=ii", 42, 42)))
    assert exec_ == procconn.Exec(123_456_789, 42, 42)
    (fork,) = procconn.parse_datagram(_datagram(0x1, struct.pack("=iiii", 1, 1, 42, 42)))
    assert fork == procconn.Fork(123_456_789, 1, 1, 42, 42)
    exit_body = struct.pack("=iiIIii", 42, 42, 3 << 8, 17, 1, 1)
    (exit_,) = procconn.parse_datagram(_datagram(0x80000000, exit_body))
    assert isinstance(exit_, procconn.Exit)
    assert (exit_.code, exit_.killed_by, exit_.parent_tgid) == (3, None, 1)
    killed = procconn.parse_proc_event(
        struct.pack("=IIQ", 0x80000000, 0, 5) + struct.pack("=iiII", 9, 9, 15, 17)
    )
    assert isinstance(killed, procconn.Exit)
    assert (killed.code, killed.killed_by, killed.parent_tgid) == (None, 15, None)  # old kernel
    (ack,) = procconn.parse_datagram(_datagram(0x0, struct.pack("=I", 0)))
    assert ack == procconn.Ack(0)
    (uid,) = procconn.parse_datagram(_datagram(0x4, struct.pack("=iiII", 42, 40, 1000, 0)))
    assert uid == procconn.IdChange(123_456_789, 42, 40, False, 1000, 0)
    (gid,) = procconn.parse_datagram(_datagram(0x40, struct.pack("=iiII", 42, 42, 7, 8)))
    assert gid == procconn.IdChange(123_456_789, 42, 42, True, 7, 8)
    # The one-unpack path of the connector reads them as the general parser does.
    conn = object.__new__(procconn.ProcConnector)
    raw = _datagram(0x40, struct.pack("=iiII", 42, 42, 7, 8))
    assert [e for _s, _c, e in conn._parse(raw, 0, len(raw))] == [gid]


def test_parse_skips_unused_kinds_truncated_and_several_per_datagram() -> None:
    sid_change = _datagram(0x80, struct.pack("=ii", 1, 1))
    assert list(procconn.parse_datagram(sid_change)) == []
    assert list(procconn.parse_datagram(_datagram(0x4, b"\x01" * 8))) == []  # truncated id
    assert list(procconn.parse_datagram(_datagram(0x2, b"\x01"))) == []  # truncated body
    assert list(procconn.parse_datagram(b"\x00" * 10)) == []
    two = _datagram(0x2, struct.pack("=ii", 5, 5)) + _datagram(0x2, struct.pack("=ii", 6, 6))
    assert [e.pid for e in procconn.parse_datagram(two) if isinstance(e, procconn.Exec)] == [5, 6]
    bogus_length = struct.pack("=IHHII", 9999, 3, 0, 0, 0)
    assert list(procconn.parse_datagram(bogus_length)) == []


# -- /proc -----------------------------------------------------------------------------------


def test_parse_stat_with_parentheses_and_spaces_in_the_name() -> None:
    rest = " ".join(["S", "77"] + ["0"] * 17 + ["98765"] + ["0"] * 30)
    stat = procinfo.parse_stat(f"1234 (evil) (name x) {rest}")
    assert stat is not None
    assert (stat.pid, stat.comm, stat.state, stat.ppid, stat.start_ticks) == (
        1234,
        "evil) (name x",
        "S",
        77,
        98765,
    )
    assert procinfo.parse_stat("garbage") is None


def test_unique_pid_is_boot_pid_and_start_time() -> None:
    mine = procinfo.read_stat(os.getpid())
    assert mine is not None
    uid = procinfo.unique_pid(os.getpid(), mine.start_ticks)
    assert uid == f"{procinfo.boot_id()}-{os.getpid()}-{mine.start_ticks}"
    # The same pid reused later is another process.
    assert procinfo.unique_pid(42, 100, "b") != procinfo.unique_pid(42, 101, "b")
    assert procinfo.unique_pid(42, 100, "b") != procinfo.unique_pid(42, 100, "c")


def test_environment_redaction_is_case_insensitive_glob() -> None:
    redact = procinfo.redactor(SensorsConfig().redact)
    raw = (
        b"PATH=/usr/bin\x00github_token=ghp_x\x00DB_Password=hunter2\x00MY_SECRET_X=s\x00"
        b"SSH_KEYFILE=/k\x00KEYBOARD=us\x00HOME=/root\x00NOEQUALS\x00"
    )
    env = procinfo.parse_environ(raw, redact)
    assert env["PATH"] == "/usr/bin"
    assert env["HOME"] == "/root"
    for name in ("github_token", "DB_Password", "MY_SECRET_X", "SSH_KEYFILE", "KEYBOARD"):
        assert env[name] == procinfo.REDACTED, name
    assert "NOEQUALS" not in env
    assert procinfo.parse_environ(b"A=1\x00", procinfo.redactor([])) == {"A": "1"}
    many = b"".join(f"V{i}={'x' * 5000}\x00".encode() for i in range(1000))
    bounded = procinfo.parse_environ(many, None)
    assert len(bounded) == procinfo.MAX_ENV_VARS
    assert all(len(v) == procinfo.MAX_ENV_VALUE for v in bounded.values())


def test_command_line_joins_arguments() -> None:
    assert procinfo.parse_cmdline(b"/bin/sleep\x000.1\x00a b\x00") == "/bin/sleep 0.1 a b"


# -- hashes ----------------------------------------------------------------------------------


def test_hash_cache_hits_and_a_changed_file_is_hashed_again(tmp_path: Path) -> None:
    target = tmp_path / "bin"
    target.write_bytes(b"hello")
    cache = HashCache(inline_max=1024, max_size=1 << 20)
    first = cache.facts(str(target))
    assert first is not None
    assert first.status == "ok"
    assert first.digests is not None
    assert first.digests.sha256 == (
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )
    assert first.digests.md5 == "5d41402abc4b2a76b9719d911017c592"
    again = cache.facts(str(target))
    assert again is not None
    assert (cache.hits, cache.misses) == (1, 1)
    target.write_bytes(b"world")  # new size/mtime/ctime: a new key
    changed = cache.facts(str(target))
    assert changed is not None
    assert changed.digests is not None
    assert changed.digests.md5 == "7d793037a0760186574b0282f2f435e7"
    assert cache.misses == 2


def test_large_files_are_hashed_in_the_background(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 4096)
    cache = HashCache(inline_max=1024, max_size=1 << 20)
    try:
        facts = cache.facts(str(big))
        assert facts is not None
        assert facts.status == "pending"
        assert facts.digests is None
        digests = wait_for(lambda: cache.get_for(facts), what="the background hash")
        assert digests is not None
        assert len(digests.sha256) == 64
        later = cache.facts(str(big))
        assert later is not None
        assert later.status == "ok"
    finally:
        cache.close()


def test_special_too_large_and_missing_files(tmp_path: Path) -> None:
    cache = HashCache(inline_max=10, max_size=100)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    special = cache.facts(str(fifo))
    assert special is not None
    assert special.status == "unreadable"
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * 200)
    too_large = cache.facts(str(huge))
    assert too_large is not None
    assert too_large.status == "too_large"
    assert cache.facts(str(tmp_path / "gone")) is None


# -- rate limit and drops ---------------------------------------------------------------------


def test_token_bucket_burst_then_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.1  # one token back
    assert [bucket.take() for _ in range(2)] == [True, False]
    now[0] += 100  # refill is capped at the burst
    assert sum(bucket.take() for _ in range(10)) == 3


class Dummy(Sensor):
    name = "dummy"

    def _start(self, sink: Sink) -> None:
        self.sink = sink

    def _stop(self) -> None:
        pass


def _emit(emitter: Emitter, sensor: Sensor, n: int, size: int = 10) -> None:
    for i in range(n):
        if emitter.allow(sensor):
            emitter.submit(sensor, "process_started", {"x": "y" * size}, f"id-{i}", 1.0)


def test_every_event_is_produced_or_counted_as_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=20_000)
    # A refill of one token a minute: the 50 of the burst are all the test's 100 events get,
    # however slowly a loaded machine runs the loop.
    emitter = Emitter(spool, rate=1 / 60, burst=50, spool_share=0.5, queue_size=30)
    sensor = Dummy()
    _emit(emitter, sensor, 100, size=400)  # no writer yet: the queue fills
    counts = sensor.counters.snapshot()
    assert counts["dropped_rate_limit"] == 50
    assert counts["dropped_queue"] == 20
    emitter.start()
    emitter.stop()
    counts = sensor.counters.snapshot()
    # 30 queued events of ~470 bytes into a 10,000-byte share: some are refused.
    assert counts["produced"] + counts["dropped_spool"] == 30
    assert counts["dropped_spool"] > 0
    assert counts["produced"] == len(spool.pending())
    assert counts["dropped"] == 50 + 20 + counts["dropped_spool"]
    assert spool.stats()["dropped_telemetry_full"] == counts["dropped_spool"]
    # Telemetry never evicted anything: an alert still fits in the reserved rest.
    spool.enqueue("alerts", "Alerts", {"a": 1})
    assert len(spool.pending()) == counts["produced"] + 1
    spool.close()


def test_the_same_event_id_is_queued_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    item = SpoolEvent("process", "process_started", "abc", 1.0, {"pid": 1})
    assert spool.enqueue_telemetry([item], 1 << 20) == ([item], [])
    spool.enqueue_telemetry([item], 1 << 20)
    assert len(spool.pending()) == 1
    assert event_id("process_started", "u", 1) == event_id("process_started", "u", 1)
    assert event_id("process_started", "u", 1) != event_id("process_stopped", "u", 1)
    spool.close()


# -- runner and health -------------------------------------------------------------------------


def test_not_root_fails_with_needs_root_and_health_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    spool = Spool(tmp_path / "spool.db")
    sent: list[tuple[str, dict[str, Any]]] = []
    runner = SensorRunner(SensorsConfig(), spool, lambda kind, data, _id: sent.append((kind, data)))
    runner.start()
    try:
        process = runner.sensors[0]
        assert process.name == "process"
        assert process.state == SensorState.FAILED
        assert process.reason == "needs root"
        assert runner.kernel_acq_available is False
        kind, data = sent[0]
        assert kind == "sensor_health"
        checked = validate(CATALOGUE["sensor_health"], data)
        assert checked["sensor_0"] == "process"
        assert checked["state_0"] == "failed"
        assert checked["reason_0"] == "needs root"
        assert checked["count"] == len(runner.sensors)
    finally:
        runner.stop()
        spool.close()


def test_disabled_sensor_says_so(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    config = SensorsConfig(process=False)
    runner = SensorRunner(config, spool, lambda *_: None)
    runner.start()
    runner.stop()
    assert runner.sensors[0].state == SensorState.DISABLED
    assert "agent.toml" in runner.sensors[0].reason
    spool.close()


def test_process_events_validate_against_the_catalogue(tmp_path: Path) -> None:
    """The sensor's own data for this very process, as the exec and exit handlers build it."""

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

    sink = Collect()
    sensor = ProcessSensor(HashCache(1 << 30, 1 << 30), ["*TOKEN*"], 1 << 20)
    sensor._sink = sink
    sensor.on_exec(procconn.Exec(1_000_000, os.getpid(), os.getpid()))
    sensor.on_exit(procconn.Exit(2_000_000, os.getpid(), os.getpid(), 256, 17, None, None))
    # A pid never seen and long gone: reported with what the kernel said, and the flag.
    sensor.on_exit(procconn.Exit(3_000_000, 999_999_999, 999_999_999, 0, 17, 1, 1))
    (_, started), (_, stopped), (_, ghost) = sink.events
    for kind, data in sink.events:
        validate(CATALOGUE[kind], data)
    assert started["pid"] == os.getpid()
    assert len(started["sha256"]) == 64
    assert started["unique_pid"] == stopped["unique_pid"]
    assert "unavailable" not in started
    assert stopped["exit_code"] == 1
    assert ghost["pid"] == 999_999_999
    assert ghost["exit_code"] == 0
    assert "file_path" in ghost["unavailable"]
    assert "start_time" in ghost["unavailable"]


def test_the_stop_of_a_rate_limited_exec_does_not_borrow_the_parents_image() -> None:
    """Dropped at exec (counted), the process's stop says its image is unknown: it must not
    be reported as running its parent's, as a fork without exec is."""

    class Limited:
        def __init__(self) -> None:
            self.events: list[tuple[str, dict[str, Any]]] = []
            self.refuse_next = False

        def allow(self, sensor: Sensor) -> bool:
            if self.refuse_next:
                self.refuse_next = False
                return False
            return True

        def submit(
            self, sensor: Sensor, event_type: str, data: dict[str, Any], event_id: str, when: float
        ) -> bool:
            self.events.append((event_type, data))
            return True

    sink = Limited()
    sensor = ProcessSensor(HashCache(1 << 30, 1 << 30), [], 1 << 20)
    sensor._sink = sink
    me = os.getpid()
    sensor.on_exec(procconn.Exec(1_000_000, me, me))  # the parent, read from /proc
    child = 999_999_998
    sensor.handle(procconn.Fork(1_500_000, me, me, child, child))
    sink.refuse_next = True
    sensor.handle(procconn.Exec(1_600_000, child, child))  # over the rate limit
    sensor.handle(procconn.Exit(1_700_000, child, child, 0, 17, me, me))
    kinds = [kind for kind, _ in sink.events]
    assert kinds == ["process_started", "process_stopped"]
    stopped = sink.events[1][1]
    assert stopped["pid"] == child
    assert "file_path" not in stopped
    assert "file_path" in stopped["unavailable"]
    assert stopped["parent_pid"] == me
