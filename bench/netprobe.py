"""The kernel's side of a load test on loopback: listen-queue overflows, SYN cookies, TIME_WAIT
sockets, and each server process's file-descriptor limit and use.

A fleet of 100,000 agents failed with most connections refused or timed out while the
server and the generator were both mostly idle (bench/findings.md, issue 20): the figures
that explain such a run are the kernel's, not the processes', so the fleet reports them.
Everything here reads /proc (Linux); elsewhere it reports nothing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

# /proc/net/netstat (TcpExt) and /proc/net/snmp (Tcp) counters worth a delta over a run.
COUNTERS = (
    "TcpExt:ListenOverflows",
    "TcpExt:ListenDrops",
    "TcpExt:SyncookiesSent",
    "TcpExt:SyncookiesRecv",
    "TcpExt:SyncookiesFailed",
    "TcpExt:TCPReqQFullDrop",
    "TcpExt:TCPReqQFullDoCookies",
    "TcpExt:TCPTimeWaitOverflow",
    "TcpExt:TW",
    "TcpExt:TCPAbortOnData",
    "TcpExt:TCPAbortOnClose",
    "Tcp:AttemptFails",
    "Tcp:EstabResets",
    "Tcp:RetransSegs",
    "Tcp:OutRsts",
    "Tcp:ActiveOpens",
    "Tcp:PassiveOpens",
)


def tcp_counters() -> dict[str, int]:
    """``Group:Name -> value`` from /proc/net/netstat and /proc/net/snmp (pairs of lines: the
    names, then the values)."""
    found: dict[str, int] = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        with contextlib.suppress(OSError), open(path) as f:
            lines = f.read().splitlines()
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            group, _, keys = names.partition(":")
            _, _, nums = values.partition(":")
            for key, num in zip(keys.split(), nums.split(), strict=False):
                with contextlib.suppress(ValueError):
                    found[f"{group}:{key}"] = int(num)
    return found


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS if k in after}


def sockstat() -> dict[str, int]:
    """The TCP line of /proc/net/sockstat: inuse, orphan, tw, alloc, mem."""
    with contextlib.suppress(OSError), open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                words = line.split()[1:]
                return {k: int(v) for k, v in zip(words[::2], words[1::2], strict=False)}
    return {}


CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_times() -> dict[str, list[int]]:
    """Per CPU (``cpu0``...), the jiffies of /proc/stat in CPU_FIELDS' order."""
    found: dict[str, list[int]] = {}
    with contextlib.suppress(OSError), open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if name.startswith("cpu") and name != "cpu":
                found[name] = [int(v) for v in values[: len(CPU_FIELDS)]]
    return found


def cpu_shares(before: dict[str, list[int]], after: dict[str, list[int]]) -> dict[str, Any]:
    """Per CPU, the % of the interval in user, system, softirq and idle: on loopback the
    kernel's TCP work for both ends runs as softirq, charged to neither process."""
    shares: dict[str, Any] = {}
    for cpu, end in after.items():
        start = before.get(cpu)
        if start is None:
            continue
        delta = [b - a for a, b in zip(start, end, strict=False)]
        total = sum(delta) or 1
        named = dict(zip(CPU_FIELDS, delta, strict=False))
        shares[cpu] = {
            k: round(100 * named.get(k, 0) / total, 1)
            for k in ("user", "system", "softirq", "idle")
        }
    return shares


def fd_limit(pid: int) -> list[int] | None:
    """[soft, hard] RLIMIT_NOFILE of a process, from /proc/<pid>/limits (a list: the
    results go through JSON, and a re-render must show what the run showed)."""
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return [int(soft), int(hard)]
    return None


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def listen_queue(port: int) -> tuple[int, int] | None:
    """(accept queue now, its limit) of the socket listening on ``port``: a listener's Recv-Q
    is its accept queue, its Send-Q the backlog it was given.  Through ``ss`` (netlink,
    filtered in the kernel): /proc/net/tcp lists every TIME_WAIT socket too, 100,000 lines
    a second to parse in the generator's process."""
    try:
        out = subprocess.run(
            ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1].isdigit() and fields[2].isdigit():
            return int(fields[1]), int(fields[2])
    return None


def server_sockets(port: int) -> dict[str, int]:
    """The server's side of its connections now, by state; ``unread``: those holding request
    bytes the server has not read yet (Recv-Q > 0), ``unsent``: answer bytes the client has
    not taken (Send-Q > 0)."""
    try:
        out = subprocess.run(
            ["ss", "-Htan", f"sport = :{port}"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found: dict[str, int] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0] == "LISTEN":
            continue
        found[fields[0]] = found.get(fields[0], 0) + 1
        if fields[1] != "0":
            found["unread"] = found.get("unread", 0) + 1
        if fields[2] != "0":
            found["unsent"] = found.get("unsent", 0) + 1
    return found


@dataclass
class NetSampler:
    """Once a second: TIME_WAIT and in-use TCP sockets, the listener's accept queue, and the
    most descriptors each of ``pids()`` held."""

    port: int
    pids: list[int]
    interval: float = 1.0
    snapshot_after: int = 30  # seconds into the run: one look at the server's sockets
    snapshot: dict[str, int] = field(default_factory=dict)
    tw_max: int = 0
    inuse_max: int = 0
    accept_queue_max: int = 0
    accept_queue_limit: int = 0
    fds_max: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _before: dict[str, int] = field(default_factory=dict)
    _cpu_before: dict[str, list[int]] = field(default_factory=dict)

    def start(self) -> NetSampler:
        self._before = tcp_counters()
        self._cpu_before = cpu_times()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(self.interval):
            ticks += 1
            if ticks == self.snapshot_after:
                self.snapshot = server_sockets(self.port)
            stat = sockstat()
            self.tw_max = max(self.tw_max, stat.get("tw", 0))
            self.inuse_max = max(self.inuse_max, stat.get("inuse", 0))
            queue = listen_queue(self.port)
            if queue is not None:
                self.accept_queue_max = max(self.accept_queue_max, queue[0])
                self.accept_queue_limit = queue[1]
            for pid in self.pids:
                self.fds_max[pid] = max(self.fds_max.get(pid, 0), fd_count(pid))

    def stop(self) -> dict[str, object]:
        self._stop.set()
        if self._thread:
            self._thread.join()
        return {
            "tcp_counters": counter_delta(self._before, tcp_counters()),
            "cpu_shares": cpu_shares(self._cpu_before, cpu_times()),
            "time_wait_max": self.tw_max,
            f"server_sockets_at_{self.snapshot_after}s": self.snapshot,
            "tcp_inuse_max": self.inuse_max,
            "accept_queue_max": self.accept_queue_max,
            "accept_queue_limit": self.accept_queue_limit,
            "fds_max": {str(pid): n for pid, n in self.fds_max.items()},
            "fd_limits": {str(pid): fd_limit(pid) for pid in self.pids},
        }
