"""The terminal-session sensor: ``terminal_session_started`` / ``terminal_session_ended``
from utmp.

``/var/run/utmp`` holds one ``struct utmp`` (glibc, 384 bytes on Linux, time as two 32-bit
fields on every architecture) per terminal line: a login writes a ``USER_PROCESS`` record,
the logout turns it into ``DEAD_PROCESS``.  The sensor reads the file whole every half
second (a few KiB: as cheap as a stat, and unlike an mtime check it cannot miss a rewrite
within one clock tick) and diffs the live sessions when its bytes changed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import struct
import time
from dataclasses import dataclass
from typing import Any

from garrison.agent import host
from garrison.agent.sensors.base import Sensor, SensorUnavailableError, Sink

log = logging.getLogger("garrison.agent.sensors.utmp")

# type, pid, line[32], id[4], user[32], host[256], exit (termination, exit), session,
# tv (sec, usec), addr_v6[4], unused[20]
UTMP = struct.Struct("=h2xi32s4s32s256shhiii16s20x")
USER_PROCESS = 7
DEAD_PROCESS = 8
POLL = 0.5
MAX_RECORDS = 4096  # utmp has one slot per line: more than this is not a utmp file


@dataclass(frozen=True)
class UtmpRecord:
    type: int
    pid: int
    line: str
    id: str
    user: str
    host: str
    session: int
    time: float
    address: str | None

    @property
    def key(self) -> tuple[str, str, int, str, float]:
        """One login: the same slot, process, user and login time."""
        return (self.line, self.id, self.pid, self.user, self.time)


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace")


def _address(raw: bytes) -> str | None:
    if not any(raw):
        return None
    if not any(raw[4:]):  # IPv4 in the first word
        return str(ipaddress.IPv4Address(raw[:4]))
    return str(ipaddress.IPv6Address(raw))


def parse_record(raw: bytes) -> UtmpRecord:
    kind, pid, line, ident, user, host_b, _term, _exit, session, sec, usec, addr = UTMP.unpack(raw)
    return UtmpRecord(
        type=kind,
        pid=pid,
        line=_text(line),
        id=_text(ident),
        user=_text(user),
        host=_text(host_b),
        session=session,
        time=sec + usec / 1e6,
        address=_address(addr),
    )


def parse_utmp(data: bytes) -> list[UtmpRecord]:
    """Every whole record (a torn tail, being written, is left for the next read)."""
    count = min(len(data) // UTMP.size, MAX_RECORDS)
    return [parse_record(data[i * UTMP.size : (i + 1) * UTMP.size]) for i in range(count)]


def pack_record(record: UtmpRecord) -> bytes:
    """The inverse of :func:`parse_record` (tests write utmp files with it)."""
    addr = bytes(16)
    if record.address:
        ip = ipaddress.ip_address(record.address)
        addr = ip.packed if ip.version == 6 else ip.packed + bytes(12)
    sec = int(record.time)
    return UTMP.pack(
        record.type,
        record.pid,
        record.line.encode(),
        record.id.encode(),
        record.user.encode(),
        record.host.encode(),
        0,
        0,
        record.session,
        sec,
        round((record.time - sec) * 1e6),
        addr,
    )


def sessions(records: list[UtmpRecord]) -> dict[tuple[str, str, int, str, float], UtmpRecord]:
    return {r.key: r for r in records if r.type == USER_PROCESS and r.user}


def diff(
    before: dict[tuple[str, str, int, str, float], UtmpRecord], records: list[UtmpRecord]
) -> tuple[list[UtmpRecord], list[tuple[UtmpRecord, float | None]]]:
    """(started, ended with the logout time when utmp has it) between two reads."""
    now = sessions(records)
    started = [r for k, r in now.items() if k not in before]
    dead = {(r.line, r.id): r for r in records if r.type == DEAD_PROCESS}
    ended: list[tuple[UtmpRecord, float | None]] = []
    for key, record in before.items():
        if key in now:
            continue
        gone = dead.get((record.line, record.id))
        ended.append((record, gone.time if gone is not None and gone.time else None))
    return started, ended


def event_id(event_type: str, record: UtmpRecord) -> str:
    text = f"{event_type}|{'|'.join(map(str, record.key))}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class TerminalSensor(Sensor):
    name = "terminal"

    def __init__(self, path: str, needs_root: bool = True) -> None:
        super().__init__()
        self.path = path
        self.needs_root = needs_root
        self.live: dict[tuple[str, str, int, str, float], UtmpRecord] = {}
        self._seen: bytes | None = None
        self._sink: Sink | None = None
        self._host = host.hostname()
        self._os = host.platform_name()

    def _start(self, sink: Sink) -> None:
        if self.needs_root and os.geteuid() != 0:
            raise SensorUnavailableError("needs root")
        if not os.path.isfile(self.path):
            raise SensorUnavailableError(f"{self.path} does not exist (no login records here)")
        self._sink = sink
        self._seen = None
        self.check()  # the sessions open now: their ids are stable, a restart repeats none
        self._run_thread(self._run, "sensor-terminal")

    def _stop(self) -> None:
        self._end_thread()

    def _run(self) -> None:
        while not self._stop_event.wait(POLL):
            try:
                self.check()
            except Exception:
                log.exception("terminal sensor: reading %s crashed", self.path)

    def check(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(MAX_RECORDS * UTMP.size)
        except FileNotFoundError:
            return  # replaced this instant; the next poll reads the new one
        except OSError as exc:
            log.warning("terminal sensor: %s: %s", self.path, exc.strerror or exc)
            return
        if data == self._seen:
            return
        self._seen = data
        records = parse_utmp(data)
        started, ended = diff(self.live, records)
        self.live = sessions(records)
        sink = self._sink
        if sink is None:
            return
        for record in started:
            if sink.allow(self):
                data_out = self.data(record)
                sink.submit(self, "terminal_session_started", data_out,
                            event_id("terminal_session_started", record), record.time)  # fmt: skip
        for record, end in ended:
            if sink.allow(self):
                when = end or time.time()
                data_out = self.data(record)
                data_out["time"] = data_out["end_time"] = when
                sink.submit(self, "terminal_session_ended", data_out,
                            event_id("terminal_session_ended", record), when)  # fmt: skip

    def data(self, record: UtmpRecord) -> dict[str, Any]:
        data: dict[str, Any] = {
            "time": record.time,
            "host": self._host,
            "os": self._os,
            "user": record.user,
            "login_user": record.user,
            "tty": record.line,
            "pid": record.pid,
            "start_time": record.time,
            "session_id": record.session,
            "remote": bool(record.host or record.address),
        }
        if record.host:
            data["remote_host"] = record.host
        if record.address:
            data["remote_ip"] = record.address
        return data
