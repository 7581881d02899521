"""The listening-port, OS-log and terminal-session sensors: their parsers, their diffs, and
each sensor against a real source the test controls (a socket, a log file, a utmp file,
a stand-in journalctl)."""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.config import SensorsConfig
from garrison.agent.sensors import authparse, oslog, ports, sockdiag, utmp
from garrison.agent.sensors.base import Sensor, SensorState
from garrison.agent.sensors.hashes import HashCache
from garrison.agent.sensors.runner import SensorRunner
from garrison.agent.spool import Spool
from garrison.common.catalogue import CATALOGUE, search_terms, validate
from tests.support import wait_for


class Collect:
    """A sink that checks every event against the catalogue and keeps it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], str]] = []

    def allow(self, sensor: Sensor) -> bool:
        return True

    def submit(
        self, sensor: Sensor, event_type: str, data: dict[str, Any], event_id: str, when: float
    ) -> bool:
        validate(CATALOGUE[event_type], data)
        self.events.append((event_type, data, event_id))
        return True

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [d for t, d, _ in self.events if t == event_type]


# -- inet_diag ---------------------------------------------------------------------------------


def _diag_msg(family: int, port: int, address: bytes, uid: int, inode: int, cookie: int) -> bytes:
    """An inet_diag_msg as linux/inet_diag.h lays it out (written out here, not with the
    module's structs, so a wrong layout there fails)."""
    head = struct.pack("=BBBB", family, sockdiag.TCP_LISTEN, 0, 0)
    sockid = struct.pack(">HH", port, 0) + address.ljust(16, b"\0") + bytes(16)
    sockid += struct.pack("=III", 0, cookie & 0xFFFFFFFF, cookie >> 32)
    tail = struct.pack("=IIIII", 0, 0, 128, uid, inode)
    return head + sockid + tail


def _nlmsg(kind: int, seq: int, payload: bytes) -> bytes:
    data = struct.pack("=IHHII", 16 + len(payload), kind, 2, seq, 0) + payload
    return data + bytes(-len(data) % 4)


def test_the_dump_request_is_nlmsghdr_and_inet_diag_req_v2() -> None:
    raw = sockdiag.request(socket.AF_INET6, socket.IPPROTO_TCP, 1 << 10, seq=9)
    assert len(raw) == 16 + 56
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", raw)
    assert (length, kind, flags, seq, pid) == (72, 20, 0x301, 9, 0)
    family, protocol, ext, _pad, states = struct.unpack_from("=BBBBI", raw, 16)
    assert (family, protocol, ext, states) == (socket.AF_INET6, 6, 0, 1 << 10)
    assert raw[24:] == bytes(48)


def test_inet_diag_messages_parse_v4_v6_and_end_at_done() -> None:
    v4 = _diag_msg(socket.AF_INET, 8080, socket.inet_aton("10.0.0.5"), 1000, 4242, 2**33 + 7)
    v6 = _diag_msg(socket.AF_INET6, 443, socket.inet_pton(socket.AF_INET6, "2001:db8::1"), 0, 9, 1)
    data = (
        _nlmsg(20, 5, v4)
        + _nlmsg(20, 4, v4)  # another request's answer: skipped
        + _nlmsg(20, 5, v6)
        + _nlmsg(3, 5, b"\0\0\0\0")
    )
    found, done = sockdiag.parse_messages(data, 5, "tcp")
    assert done is True
    assert found == [
        sockdiag.ListeningSocket(
            "tcp", 4, "10.0.0.5", 8080, 4242, 1000, 2**33 + 7, 0, sockdiag.TCP_LISTEN, "0.0.0.0"
        ),
        sockdiag.ListeningSocket(
            "tcp", 6, "2001:db8::1", 443, 9, 0, 1, 0, sockdiag.TCP_LISTEN, "::"
        ),
    ]
    # More to come (no DONE yet), a truncated message, an error
    assert sockdiag.parse_messages(_nlmsg(20, 5, v4[:40]), 5, "tcp") == ([], False)
    with pytest.raises(sockdiag.SockDiagError):
        sockdiag.parse_messages(_nlmsg(2, 5, struct.pack("=i", -13) + bytes(16)), 5, "tcp")


def _sock(port: int, inode: int) -> sockdiag.ListeningSocket:
    return sockdiag.ListeningSocket("tcp", 4, "0.0.0.0", port, inode, 0, inode, 0)


def test_the_port_diff_and_its_event_ids() -> None:
    a, b, c = _sock(22, 1), _sock(80, 2), _sock(80, 3)  # c: port 80 again, a new socket
    opened, closed = ports.diff({a.key: a, b.key: b}, [a, c])
    assert opened == [c]
    assert closed == [b]
    assert ports.diff({a.key: a}, [a]) == ([], [])
    # Stable for one socket of one boot (a restart sends the same id), distinct otherwise.
    assert ports.event_id("port_listening", a, "boot") == ports.event_id(
        "port_listening", a, "boot"
    )
    assert ports.event_id("port_listening", a, "boot") != ports.event_id("port_closed", a, "boot")
    assert ports.event_id("port_listening", b, "boot") != ports.event_id(
        "port_listening", c, "boot"
    )
    assert ports.event_id("port_listening", a, "b1") != ports.event_id("port_listening", a, "b2")


def test_socket_owners_finds_this_process_by_inode() -> None:
    with socket.socket() as listener:
        inode = os.fstat(listener.fileno()).st_ino
        assert ports.socket_owners({inode}) == {inode: os.getpid()}
    assert ports.socket_owners({2**40}) == {}


def test_port_sensor_reports_a_port_opened_and_closed(tmp_path: Path) -> None:
    sink = Collect()
    sensor = ports.PortSensor(HashCache(1 << 20, 1 << 30), 0.05, needs_root=False)
    assert sensor.start(sink), sensor.reason
    try:
        listener = socket.socket(socket.AF_INET6)
        listener.bind(("::1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def mine(event_type: str) -> list[dict[str, Any]]:
            return [d for d in sink.of(event_type) if d["port"] == port]

        (opened,) = wait_for(lambda: mine("port_listening"), timeout=5, what="port_listening")
        assert opened["protocol"] == "tcp"
        assert opened["ip_version"] == 6
        assert opened["adapter_ip"] == "::1"
        assert opened["pid"] == os.getpid()
        assert opened["process_path"] == os.path.realpath(f"/proc/{os.getpid()}/exe")
        assert opened["unique_pid"].endswith(
            f"-{os.getpid()}-" + opened["unique_pid"].split("-")[-1]
        )
        assert len(opened["process_sha256"]) == 64
        assert ("port", str(port)) in search_terms(CATALOGUE["port_listening"], opened)
        listener.close()
        (closed,) = wait_for(lambda: mine("port_closed"), timeout=5, what="port_closed")
        assert closed["pid"] == os.getpid()
        assert closed["socket_inode"] == opened["socket_inode"]
    finally:
        sensor.stop()
    assert sensor.state == SensorState.STOPPED


# -- auth lines ------------------------------------------------------------------------------

AUTH_LINES: list[tuple[str, dict[str, Any] | None]] = [
    (
        "May 20 10:01:02 web1 sshd[1234]: Accepted password for alice from 192.0.2.10 port "
        "51000 ssh2",
        {"auth_subtype": "ssh_login", "result": "success", "user": "alice",
         "remote_ip": "192.0.2.10", "remote_port": 51000, "auth_method": "password"},
    ),
    (
        "2025-05-20T10:01:02.123456+00:00 web1 sshd[1234]: Accepted publickey for bob from "
        "2001:db8::7 port 40022 ssh2: ED25519 SHA256:Zm9v",
        {"auth_subtype": "ssh_login", "user": "bob", "remote_ip": "2001:db8::7",
         "remote_port": 40022, "auth_method": "publickey"},
    ),
    (
        "May 20 10:01:03 web1 sshd[1235]: Failed password for invalid user admin from "
        "198.51.100.7 port 41234 ssh2",
        {"auth_subtype": "ssh_login_failed", "result": "failure", "user": "admin",
         "invalid_user": True, "remote_ip": "198.51.100.7", "remote_port": 41234},
    ),
    (
        "May 20 10:01:04 web1 sshd[1236]: Failed password for root from ::ffff:192.0.2.1 "
        "port 22 ssh2",
        {"auth_subtype": "ssh_login_failed", "user": "root", "invalid_user": False,
         "remote_ip": "::ffff:c000:201"},
    ),
    (
        "May 20 10:01:05 web1 sshd-session[1237]: Invalid user oracle from 203.0.113.9 port 50000",
        {"auth_subtype": "ssh_invalid_user", "user": "oracle", "remote_ip": "203.0.113.9"},
    ),
    (
        "May 20 10:01:06 web1 sshd[1238]: Failed publickey for git from fe80::1%eth0 port 2 ssh2",
        {"auth_subtype": "ssh_login_failed", "user": "git", "remote_ip": "fe80::1",
         "auth_method": "publickey"},
    ),
    (
        "May 20 10:02:00 web1 su[2000]: (to root) alice on pts/0",
        {"auth_subtype": "su", "result": "success", "user": "alice", "target_user": "root",
         "tty": "pts/0"},
    ),
    (
        "May 20 10:02:01 web1 su[2001]: FAILED SU (to root) alice on pts/0",
        {"auth_subtype": "su_failed", "result": "failure", "user": "alice",
         "target_user": "root"},
    ),
    (
        "May 20 10:02:02 web1 su[2002]: pam_unix(su:auth): authentication failure; logname=bob "
        "uid=1001 euid=0 tty=/dev/pts/1 ruser=bob rhost=  user=root",
        {"auth_subtype": "su_failed", "user": "bob", "target_user": "root"},
    ),
    (
        "May 20 10:03:00 web1 sudo[3000]:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
        "COMMAND=/usr/bin/apt update",
        {"auth_subtype": "sudo", "result": "success", "user": "alice", "target_user": "root",
         "tty": "pts/0", "working_directory": "/home/alice", "command": "/usr/bin/apt update"},
    ),
    (
        "May 20 10:03:01 web1 sudo[3001]:  mallory : 3 incorrect password attempts ; TTY=pts/1 "
        "; PWD=/tmp ; USER=root ; COMMAND=/bin/sh -c echo a ; echo b",
        {"auth_subtype": "sudo_failed", "result": "failure", "user": "mallory",
         "failure_reason": "3 incorrect password attempts",
         "command": "/bin/sh -c echo a ; echo b"},
    ),
    (
        "May 20 10:03:02 web1 sudo[3002]: eve : user NOT in sudoers ; TTY=pts/2 ; PWD=/home/eve"
        " ; USER=root ; COMMAND=/bin/bash",
        {"auth_subtype": "sudo_failed", "user": "eve", "failure_reason": "user NOT in sudoers"},
    ),
    # Not authentication events
    ("May 20 10:04:00 web1 CRON[4000]: pam_unix(cron:session): session opened for user root",
     None),
    ("May 20 10:04:01 web1 sshd[4001]: Connection closed by 192.0.2.1 port 22 [preauth]", None),
    ("May 20 10:04:02 web1 sudo[4002]: pam_unix(sudo:session): session opened for user root",
     None),
    ("not a syslog line at all", None),
]  # fmt: skip


@pytest.mark.parametrize(("line", "expected"), AUTH_LINES)
def test_auth_lines_parse_into_fields(line: str, expected: dict[str, Any] | None) -> None:
    parsed = authparse.parse_syslog(line)
    event = authparse.parse_auth(parsed.ident, parsed.message) if parsed else None
    if expected is None:
        assert event is None
        return
    assert parsed is not None
    assert event is not None
    got = {"auth_subtype": event.auth_subtype, "result": event.result, "user": event.user}
    got.update(event.fields)
    assert {k: got.get(k) for k in expected} == expected
    assert parsed.host == "web1"
    assert parsed.pid is not None
    assert parsed.time is not None


def test_syslog_timestamps_traditional_and_rfc3339() -> None:
    import datetime as dt

    line = authparse.parse_syslog("2025-05-20T10:01:02.5+02:00 h sshd[1]: x")
    assert line is not None
    assert line.time == dt.datetime(2025, 5, 20, 8, 1, 2, 500000, tzinfo=dt.UTC).timestamp()
    january = dt.datetime(2026, 1, 2)
    old = authparse.parse_syslog("Dec 31 23:59:59 h sshd: x", now=january)
    assert old is not None
    assert old.time == dt.datetime(2025, 12, 31, 23, 59, 59).timestamp()
    assert old.pid is None


def test_a_journal_record_becomes_a_line() -> None:
    record = {
        "MESSAGE": list(b"Invalid user \xff from 192.0.2.3 port 1"),
        "SYSLOG_IDENTIFIER": "sshd",
        "_PID": "42",
        "_HOSTNAME": "h",
        "__REALTIME_TIMESTAMP": "1700000000000000",
    }
    line = authparse.journal_line(record)
    assert line is not None
    assert (line.ident, line.pid, line.host, line.time) == ("sshd", 42, "h", 1_700_000_000.0)
    assert line.message.startswith("Invalid user \ufffd from")
    assert authparse.journal_line({"SYSLOG_IDENTIFIER": "sshd"}) is None


# -- following a log file ----------------------------------------------------------------------


def test_the_follower_reads_new_lines_across_rotation_and_truncation(tmp_path: Path) -> None:
    log_path = tmp_path / "auth.log"
    log_path.write_text("old line, before the follower\n")
    follower = oslog.LogFollower(str(log_path))
    assert follower.open(at_end=True)
    assert follower.poll() == []
    with log_path.open("a") as out:
        out.write("one\ntw")
    first = follower.poll()
    assert [line for line, _ in first] == [b"one"]
    assert first[0][1][2] == len("old line, before the follower\n")
    with log_path.open("a") as out:
        out.write("o\nlast of the old file\n")
    # logrotate: the old file renamed, a new one created
    log_path.rename(tmp_path / "auth.log.1")
    log_path.write_text("first of the new file\n")
    assert [line for line, _ in follower.poll()] == [
        b"two",
        b"last of the old file",
        b"first of the new file",
    ]
    assert follower.rotations == 1
    # copytruncate: the same file cut to zero, then written again
    log_path.write_text("")
    assert follower.poll() == []
    log_path.write_text("after truncation\n")
    assert [line for line, _ in follower.poll()] == [b"after truncation"]
    # A line with no end is cut at MAX_LINE: the follower's memory stays bounded.
    with log_path.open("a") as out:
        out.write("x" * (oslog.MAX_LINE + 10))
    (long_line,) = follower.poll()
    assert len(long_line[0]) == oslog.MAX_LINE
    follower.close()


def test_os_log_sensor_follows_a_file_and_a_restart_duplicates_nothing(tmp_path: Path) -> None:
    log_path = tmp_path / "auth.log"
    log_path.write_text("May 20 10:00:00 h sshd[1]: Failed password for before from 192.0.2.1\n")
    sink = Collect()
    sensor = oslog.OsLogSensor("file", str(log_path), "journalctl", needs_root=False)
    assert sensor.start(sink), sensor.reason
    line = (
        "May 20 10:01:03 web1 sshd[1235]: Failed password for invalid user admin from "
        "2001:db8::9 port 41234 ssh2\n"
    )
    try:
        with log_path.open("a") as out:
            out.write(line)
        (event,) = wait_for(lambda: sink.of("os_log_event"), timeout=5, what="os_log_event")
    finally:
        sensor.stop()
    assert event["user"] == "admin"
    assert event["remote_ip"] == "2001:db8::9"
    assert event["auth_subtype"] == "ssh_login_failed"
    assert event["channel"] == str(log_path)
    assert event["provider"] == "sshd"
    assert event["header"]["ExecutionProcessID"] == "1235"
    assert event["body"]["IpAddress"] == "2001:db8::9"
    assert event["message"] == line.strip()
    first_id = sink.events[0][2]
    # Started again, it reads from the end: the line already sent is not sent again.
    again = Collect()
    sensor2 = oslog.OsLogSensor("file", str(log_path), "journalctl", needs_root=False)
    assert sensor2.start(again)
    try:
        with log_path.open("a") as out:
            out.write(line.replace("admin", "second"))
        (event2,) = wait_for(lambda: again.of("os_log_event"), timeout=5, what="the new line")
    finally:
        sensor2.stop()
    assert event2["user"] == "second"
    assert again.events[0][2] != first_id


FAKE_JOURNALCTL = """#!{python}
import json, sys, time
with open({args!r}, "a") as out:
    out.write(json.dumps(sys.argv[1:]) + "\\n")
print("-- a note journalctl prints --", flush=True)
print(json.dumps({{"__CURSOR": "s=abc;i=" + str(len(open({args!r}).readlines())),
    "__REALTIME_TIMESTAMP": "1700000000000000", "_HOSTNAME": "web1",
    "SYSLOG_IDENTIFIER": "sshd", "_PID": "77",
    "MESSAGE": "Failed password for invalid user admin from 2001:db8::5 port 4000 ssh2"}}),
    flush=True)
if {linger}:
    time.sleep(60)
"""


def _fake_journalctl(tmp_path: Path, linger: bool) -> tuple[Path, Path]:
    args = tmp_path / "journalctl-args"
    script = tmp_path / "journalctl"
    script.write_text(FAKE_JOURNALCTL.format(python=sys.executable, args=str(args), linger=linger))
    script.chmod(0o755)
    return script, args


def test_os_log_sensor_reads_the_journal_through_journalctl(tmp_path: Path) -> None:
    script, args = _fake_journalctl(tmp_path, linger=True)
    sink = Collect()
    sensor = oslog.OsLogSensor("auto", "/nonexistent", str(script), False, lambda: True)
    assert sensor.start(sink), sensor.reason
    try:
        (event,) = wait_for(lambda: sink.of("os_log_event"), timeout=5, what="os_log_event")
    finally:
        sensor.stop()
    assert event["channel"] == "journal"
    assert event["record_id"] == "s=abc;i=1"
    assert event["user"] == "admin"
    assert event["remote_ip"] == "2001:db8::5"
    assert event["pid"] == 77
    command = json.loads(args.read_text().splitlines()[0])
    assert command[:3] == ["-f", "-o", "json"]
    assert "--since" in command
    assert "SYSLOG_FACILITY=4" in command
    assert "SYSLOG_FACILITY=10" in command


def test_journalctl_that_exits_is_run_again_after_the_last_cursor(tmp_path: Path) -> None:
    script, args = _fake_journalctl(tmp_path, linger=False)
    sink = Collect()
    sensor = oslog.OsLogSensor("journal", "/nonexistent", str(script), needs_root=False)
    assert sensor.start(sink), sensor.reason
    try:
        wait_for(lambda: len(sink.of("os_log_event")) >= 2, timeout=10, what="a second run")
    finally:
        sensor.stop()
    runs = [json.loads(line) for line in args.read_text().splitlines()]
    assert runs[1][runs[1].index("--after-cursor") + 1] == "s=abc;i=1"
    ids = [i for _, _, i in sink.events]
    assert len(ids) == len(set(ids))
    assert sensor.journal_restarts >= 1


def test_os_log_sensor_without_a_source_fails_with_the_reason(tmp_path: Path) -> None:
    missing = str(tmp_path / "auth.log")
    sensor = oslog.OsLogSensor("auto", missing, "journalctl", False, lambda: False)
    assert sensor.start(Collect()) is False
    assert sensor.state == SensorState.FAILED
    assert sensor.reason == f"no systemd journal here and {missing} does not exist"
    sensor = oslog.OsLogSensor("journal", missing, str(tmp_path / "nope"), needs_root=False)
    assert sensor.start(Collect()) is False
    assert "not found" in sensor.reason
    sensor = oslog.OsLogSensor("syslog", missing, "journalctl", False, lambda: False)
    assert sensor.start(Collect()) is False
    assert sensor.reason == "unknown os_log_source 'syslog'"


# -- utmp --------------------------------------------------------------------------------------


def _record(kind: int = utmp.USER_PROCESS, **changes: Any) -> utmp.UtmpRecord:
    fields: dict[str, Any] = {
        "type": kind,
        "pid": 4321,
        "line": "pts/3",
        "id": "ts/3",
        "user": "alice",
        "host": "laptop.example",
        "session": 4321,
        "time": 1_700_000_000.25,
        "address": "2001:db8::42",
    }
    fields.update(changes)
    return utmp.UtmpRecord(**fields)


def test_utmp_records_round_trip_the_glibc_layout() -> None:
    assert utmp.UTMP.size == 384
    record = _record()
    raw = utmp.pack_record(record)
    assert len(raw) == 384
    # Offsets of struct utmp (glibc, Linux): type 0, pid 4, line 8, id 40, user 44,
    # host 76, session 336, tv 340, addr_v6 348.
    assert struct.unpack_from("=h", raw, 0)[0] == utmp.USER_PROCESS
    assert struct.unpack_from("=i", raw, 4)[0] == 4321
    assert raw[8:13] == b"pts/3"
    assert raw[44:49] == b"alice"
    assert raw[76:90] == b"laptop.example"
    assert struct.unpack_from("=ii", raw, 340) == (1_700_000_000, 250000)
    assert raw[348:364] == socket.inet_pton(socket.AF_INET6, "2001:db8::42")
    assert utmp.parse_record(raw) == record
    v4 = _record(address="192.0.2.8")
    assert utmp.parse_record(utmp.pack_record(v4)).address == "192.0.2.8"
    assert utmp.parse_record(utmp.pack_record(_record(address=None))).address is None
    # A torn tail (a record being written) is left for the next read.
    assert utmp.parse_utmp(raw + raw[:100]) == [record]


def test_utmp_diff_starts_and_ends_sessions() -> None:
    boot = _record(kind=2, user="reboot", line="~", id="~~")
    alice, bob = _record(), _record(line="pts/4", id="ts/4", user="bob", pid=99)
    started, ended = utmp.diff({}, [boot, alice, bob])
    assert started == [alice, bob]
    assert ended == []
    dead = _record(kind=utmp.DEAD_PROCESS, user="", host="", time=1_700_000_100.0)
    started, ended = utmp.diff(utmp.sessions([boot, alice, bob]), [boot, dead, bob])
    assert started == []
    assert ended == [(alice, 1_700_000_100.0)]
    # A slot reused by a new login: the old session ended (time unknown), the new one started.
    again = _record(pid=5000, time=1_700_000_200.0)
    started, ended = utmp.diff(utmp.sessions([alice]), [again])
    assert started == [again]
    assert ended == [(alice, None)]
    assert utmp.event_id("terminal_session_started", alice) != utmp.event_id(
        "terminal_session_started", again
    )


def test_terminal_sensor_reports_login_and_logout(tmp_path: Path) -> None:
    path = tmp_path / "utmp"
    alice = _record()
    path.write_bytes(utmp.pack_record(_record(kind=2, user="reboot", line="~", id="~~")))
    sink = Collect()
    sensor = utmp.TerminalSensor(str(path), needs_root=False)
    assert sensor.start(sink), sensor.reason
    try:
        path.write_bytes(path.read_bytes() + utmp.pack_record(alice))
        (started,) = wait_for(
            lambda: sink.of("terminal_session_started"), timeout=5, what="session started"
        )
        dead = _record(kind=utmp.DEAD_PROCESS, user="", host="", time=1_700_000_100.0)
        path.write_bytes(path.read_bytes()[:384] + utmp.pack_record(dead))
        (ended,) = wait_for(
            lambda: sink.of("terminal_session_ended"), timeout=5, what="session ended"
        )
    finally:
        sensor.stop()
    assert started["user"] == "alice"
    assert started["tty"] == "pts/3"
    assert started["remote_host"] == "laptop.example"
    assert started["remote_ip"] == "2001:db8::42"
    assert started["pid"] == 4321
    assert started["remote"] is True
    assert ended["end_time"] == 1_700_000_100.0
    assert ended["start_time"] == alice.time


def test_terminal_sensor_without_utmp_fails_with_the_reason(tmp_path: Path) -> None:
    sensor = utmp.TerminalSensor(str(tmp_path / "utmp"), needs_root=False)
    assert sensor.start(Collect()) is False
    assert sensor.reason == f"{tmp_path / 'utmp'} does not exist (no login records here)"


# -- the runner ----------------------------------------------------------------------------------


def test_not_root_each_new_sensor_fails_with_needs_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    spool = Spool(tmp_path / "spool.db")
    sent: list[dict[str, Any]] = []
    runner = SensorRunner(SensorsConfig(), spool, lambda kind, data, _id: sent.append(data))
    runner.start()
    try:
        by_name = {s.name: s for s in runner.sensors}
        for name in ("ports", "os_log", "terminal"):
            assert by_name[name].state == SensorState.FAILED
            assert by_name[name].reason == "needs root"
        health = validate(CATALOGUE["sensor_health"], sent[0])
        names = {health[f"sensor_{i}"]: health[f"reason_{i}"] for i in range(health["count"])}
        assert names["ports"] == names["os_log"] == names["terminal"] == "needs root"
    finally:
        runner.stop()
        spool.close()


def test_each_new_sensor_can_be_turned_off(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    config = SensorsConfig(process=False, ports=False, os_log=False, terminal=False)
    runner = SensorRunner(config, spool, lambda *_: None)
    runner.start()
    runner.stop()
    states = {s.name: s.state for s in runner.sensors}
    assert [states[n] for n in ("ports", "os_log", "terminal")] == [SensorState.DISABLED] * 3
    spool.close()
