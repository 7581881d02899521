"""The listening-port sensor: ``port_listening`` when a socket starts listening,
``port_closed`` when it is gone.

Every ``port_interval`` seconds one sweep asks the kernel (:mod:`.sockdiag`) for the TCP
sockets in LISTEN and the unconnected UDP sockets, and diffs them with the last sweep by
socket (protocol, address, port, inode, cookie).  A new socket's owner is found by its
inode in ``/proc/<pid>/fd`` (one scan of /proc for all the sweep's new sockets, only when
there are some); what is found is kept with the socket for its ``port_closed``.

The first sweep reports what already listens: event ids are derived from the boot id and
the socket, so after an agent restart the same sockets are stored once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.agent import host
from garrison.agent.sensors import procinfo
from garrison.agent.sensors.base import Sensor, SensorUnavailableError, Sink
from garrison.agent.sensors.hashes import HashCache
from garrison.agent.sensors.sockdiag import ListeningSocket, SockDiag

log = logging.getLogger("garrison.agent.sensors.ports")

Key = tuple[str, int, str, int, int, int]


def event_id(event_type: str, sock: ListeningSocket, boot: str | None = None) -> str:
    text = f"{event_type}|{boot or procinfo.boot_id()}|{'|'.join(map(str, sock.key))}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def diff(
    before: dict[Key, ListeningSocket], now: list[ListeningSocket]
) -> tuple[list[ListeningSocket], list[ListeningSocket]]:
    """(opened, closed) between two sweeps."""
    current = {s.key: s for s in now}
    opened = [s for k, s in current.items() if k not in before]
    closed = [s for k, s in before.items() if k not in current]
    return opened, closed


def socket_owners(inodes: set[int], proc: Path = procinfo.PROC) -> dict[int, int]:
    """inode -> the lowest pid holding it (a forked server's parent comes first)."""
    wanted = {f"socket:[{i}]": i for i in inodes}
    found: dict[int, int] = {}
    try:
        pids = sorted(int(p) for p in os.listdir(proc) if p.isdigit())
    except OSError:
        return found
    for pid in pids:
        fd_dir = proc / str(pid) / "fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to read
        for name in names:
            try:
                target = os.readlink(fd_dir / name)
            except OSError:
                continue
            inode = wanted.get(target)
            if inode is not None and inode not in found:
                found[inode] = pid
                if len(found) == len(wanted):
                    return found
    return found


@dataclass
class Owner:
    pid: int | None = None
    unique_pid: str | None = None
    path: str | None = None
    command_line: str | None = None
    md5: str | None = None
    sha256: str | None = None


class PortSensor(Sensor):
    name = "ports"

    def __init__(self, hashes: HashCache, interval: float, needs_root: bool = True) -> None:
        super().__init__()
        self.hashes = hashes
        self.interval = max(float(interval), 0.05)
        self.needs_root = needs_root
        self.known: dict[Key, ListeningSocket] = {}
        self.owners: dict[Key, Owner] = {}
        self.sweeps = 0
        self.sweep_ms = 0.0
        self._diag: SockDiag | None = None
        self._sink: Sink | None = None
        self._host = host.hostname()
        self._os = host.platform_name()

    def _start(self, sink: Sink) -> None:
        if not hasattr(os, "geteuid") or not os.path.isdir("/proc/self"):
            raise SensorUnavailableError("needs Linux (NETLINK_SOCK_DIAG)")
        if self.needs_root and os.geteuid() != 0:
            raise SensorUnavailableError("needs root")
        try:
            self._diag = SockDiag()
            self._diag.listening()
        except OSError as exc:
            if self._diag is not None:
                self._diag.close()
                self._diag = None
            raise SensorUnavailableError(
                f"NETLINK_SOCK_DIAG is unavailable: {exc.strerror or exc}"
            ) from None
        self._sink = sink
        self._run_thread(self._run, "sensor-ports")

    def _stop(self) -> None:
        self._end_thread()
        if self._diag is not None:
            self._diag.close()
            self._diag = None

    def _run(self) -> None:
        while not self._stop_event.is_set():
            started = time.perf_counter()
            try:
                self.sweep()
            except OSError as exc:
                self.fail(f"reading NETLINK_SOCK_DIAG: {exc.strerror or exc}")
                return
            except Exception:
                log.exception("port sensor: a sweep crashed")
            self.sweep_ms = (time.perf_counter() - started) * 1000
            self._stop_event.wait(self.interval)

    def sweep(self) -> None:
        diag, sink = self._diag, self._sink
        if diag is None or sink is None:
            return
        now = diag.listening()
        self.sweeps += 1
        opened, closed = diff(self.known, now)
        when = time.time()
        new_owners = socket_owners({s.inode for s in opened if s.inode}) if opened else {}
        for sock in opened:
            self.known[sock.key] = sock
            owner = self._owner(new_owners.get(sock.inode))
            self.owners[sock.key] = owner
            if sink.allow(self):
                data = self.data(sock, owner, when)
                sink.submit(self, "port_listening", data, event_id("port_listening", sock), when)
        for sock in closed:
            self.known.pop(sock.key, None)
            owner = self.owners.pop(sock.key, Owner())
            if sink.allow(self):
                data = self.data(sock, owner, when)
                sink.submit(self, "port_closed", data, event_id("port_closed", sock), when)

    def _owner(self, pid: int | None) -> Owner:
        if pid is None:
            return Owner()
        owner = Owner(pid=pid)
        stat = procinfo.read_stat(pid)
        if stat is not None:
            owner.unique_pid = procinfo.unique_pid(pid, stat.start_ticks)
        path = procinfo.read_link(pid, "exe")
        if path is not None:
            owner.path = path.removesuffix(" (deleted)")
            facts = self.hashes.facts(f"/proc/{pid}/exe")
            if facts is not None and facts.digests is not None:
                owner.md5, owner.sha256 = facts.digests.md5, facts.digests.sha256
        owner.command_line = procinfo.read_cmdline(pid)
        return owner

    def data(self, sock: ListeningSocket, owner: Owner, when: float) -> dict[str, Any]:
        data: dict[str, Any] = {
            "time": when,
            "host": self._host,
            "os": self._os,
            "port": sock.port,
            "protocol": sock.protocol,
            "ip_version": sock.ip_version,
            "adapter_ip": sock.address,
            "socket_inode": sock.inode,
            "uid": sock.uid,
            "user": procinfo.user_name(sock.uid),
        }
        if owner.pid is None:
            data["unavailable"] = "pid"  # gone before the sweep could map it, or in-kernel
            return data
        data["pid"] = owner.pid
        optional = {
            "unique_pid": owner.unique_pid,
            "process_path": owner.path,
            "process_name": owner.path.rsplit("/", 1)[-1] if owner.path else None,
            "process_md5": owner.md5,
            "process_sha256": owner.sha256,
            "command_line": owner.command_line,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        missing = [k for k in ("unique_pid", "process_path", "process_sha256") if not optional[k]]
        if missing:
            data["unavailable"] = ",".join(missing)
        return data
