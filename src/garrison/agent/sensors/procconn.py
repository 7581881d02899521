"""The kernel's process connector: fork, exec and exit of every process, over netlink.

``NETLINK_CONNECTOR`` with the ``CN_IDX_PROC`` multicast group (``linux/connector.h``,
``linux/cn_proc.h``).  A datagram is a ``struct nlmsghdr``, a ``struct cn_msg`` and a
``struct proc_event``; the layouts below are those of the kernel headers (native byte
order, as netlink is).  Root (``CAP_NET_ADMIN``) is needed to join the group.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from garrison.agent.sensors import mmsg

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)

# struct nlmsghdr { __u32 nlmsg_len; __u16 nlmsg_type; __u16 nlmsg_flags; __u32 nlmsg_seq;
#                   __u32 nlmsg_pid; }
NLMSGHDR = struct.Struct("=IHHII")
# struct cn_msg { struct cb_id { __u32 idx; __u32 val; } id; __u32 seq; __u32 ack;
#                 __u16 len; __u16 flags; __u8 data[]; }
CN_MSG = struct.Struct("=IIIIHH")
# struct proc_event { enum what (u32); __u32 cpu; __u64 __attribute__((aligned(8)))
#                     timestamp_ns; union event_data ...}
PROC_EVENT_HEADER = struct.Struct("=IIQ")
# event_data members (pid_t / __kernel_pid_t are 32-bit signed):
FORK = struct.Struct("=iiii")  # parent_pid, parent_tgid, child_pid, child_tgid
EXEC = struct.Struct("=ii")  # process_pid, process_tgid
# process_pid, process_tgid, exit_code, exit_signal, then (since 4.17) parent_pid,
# parent_tgid; older kernels send only the first four.
EXIT = struct.Struct("=iiII")
EXIT_PARENT = struct.Struct("=ii")
ACK = struct.Struct("=I")  # err
# id_proc_event: process_pid, process_tgid, then ruid/rgid and euid/egid (in the initial
# user namespace: the kernel maps them with from_kuid_munged(&init_user_ns, ...)).
ID = struct.Struct("=iiII")
# nlmsghdr, cn_msg and the proc_event header at once (what, cpu signed, timestamp_ns): the
# common datagram, read in one unpack (ProcConnector._parse).
HEADERS = struct.Struct("=IHHII" + "IIIIHH" + "IiQ")

PROC_EVENT_NONE = 0x00000000  # the answer to a LISTEN request (ack.err)
PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_UID = 0x00000004
PROC_EVENT_GID = 0x00000040
PROC_EVENT_EXIT = 0x80000000
RECV_SIZE = 64 * 1024
# recvmmsg: datagrams read per call at most (the caller gets the events back often enough
# to read /proc while the processes still run) and the room for each (a proc_event
# datagram is under 100 bytes).
RECV_SLOTS = 64
RECV_SLOT = 1024


@dataclass(frozen=True)
class Fork:
    timestamp_ns: int
    parent_pid: int
    parent_tgid: int
    child_pid: int
    child_tgid: int


@dataclass(frozen=True)
class Exec:
    timestamp_ns: int
    pid: int
    tgid: int


@dataclass(frozen=True)
class Exit:
    timestamp_ns: int
    pid: int
    tgid: int
    exit_code: int  # the wait status: (code << 8) | signal
    exit_signal: int  # the signal sent to the parent (SIGCHLD), not the one that killed
    parent_pid: int | None
    parent_tgid: int | None

    @property
    def code(self) -> int | None:
        """The exit status when the process exited, None when a signal ended it."""
        return None if self.exit_code & 0x7F else (self.exit_code >> 8) & 0xFF

    @property
    def killed_by(self) -> int | None:
        """The signal that ended the process, None when it exited."""
        signum = self.exit_code & 0x7F
        return signum or None


@dataclass(frozen=True)
class IdChange:
    """A task's credentials changed (``commit_creds``: any of its real, effective, saved or
    filesystem uids, or gids, for ``gid``): the set*id calls, the exec of a set-id file.
    ``pid`` is the thread whose credentials changed: Linux keeps credentials per thread."""

    timestamp_ns: int
    pid: int
    tgid: int
    gid: bool  # False: the uids changed (PROC_EVENT_UID); True: the gids (PROC_EVENT_GID)
    real: int
    effective: int


@dataclass(frozen=True)
class Ack:
    err: int


ProcEvent = Fork | Exec | Exit | IdChange | Ack


def listen_message(op: int = PROC_CN_MCAST_LISTEN, seq: int = 0) -> bytes:
    """The request that subscribes (or unsubscribes) this socket to process events."""
    payload = struct.pack("=I", op)
    cn = CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, seq, 0, len(payload), 0) + payload
    return NLMSGHDR.pack(NLMSGHDR.size + len(cn), NLMSG_DONE, 0, seq, 0) + cn


def parse_proc_event(data: bytes | memoryview) -> ProcEvent | None:
    """A ``struct proc_event``; None for the kinds this sensor does not use (sid, ptrace,
    comm, coredump) or a truncated one."""
    if len(data) < PROC_EVENT_HEADER.size:
        return None
    what, _cpu, ts = PROC_EVENT_HEADER.unpack_from(data, 0)
    body = PROC_EVENT_HEADER.size
    rest = len(data) - body
    if what == PROC_EVENT_EXEC and rest >= EXEC.size:
        pid, tgid = EXEC.unpack_from(data, body)
        return Exec(ts, pid, tgid)
    if what == PROC_EVENT_FORK and rest >= FORK.size:
        return Fork(ts, *FORK.unpack_from(data, body))
    if what == PROC_EVENT_EXIT and rest >= EXIT.size:
        pid, tgid, code, signum = EXIT.unpack_from(data, body)
        parent: tuple[int, int] | tuple[None, None] = (None, None)
        if rest >= EXIT.size + EXIT_PARENT.size:
            parent = EXIT_PARENT.unpack_from(data, body + EXIT.size)
        return Exit(ts, pid, tgid, code, signum, parent[0], parent[1])
    if what in (PROC_EVENT_UID, PROC_EVENT_GID) and rest >= ID.size:
        pid, tgid, real, effective = ID.unpack_from(data, body)
        return IdChange(ts, pid, tgid, what == PROC_EVENT_GID, real, effective)
    if what == PROC_EVENT_NONE and rest >= ACK.size:
        return Ack(ACK.unpack_from(data, body)[0])
    return None


def parse_datagram(data: bytes | memoryview) -> Iterator[ProcEvent]:
    """Every process event in one netlink datagram (normally one; several are allowed)."""
    for _seq, _cpu, event in parse_sequenced(data):
        if event is not None:
            yield event


def parse_sequenced(data: bytes | memoryview) -> Iterator[tuple[int, int, ProcEvent | None]]:
    """(sequence number, cpu, event) for every process event of a datagram, including the
    kinds this sensor does not use (event None): the kernel numbers each event it sends in
    a counter per CPU (``cn_msg.seq``), so a gap is events lost.  The LISTEN answer is
    numbered otherwise and yields cpu -1."""
    offset = 0
    view = memoryview(data)
    while offset + NLMSGHDR.size <= len(view):
        length, kind, _flags, _seq, _pid = NLMSGHDR.unpack_from(view, offset)
        if length < NLMSGHDR.size or offset + length > len(view):
            return
        if kind not in (NLMSG_NOOP, NLMSG_ERROR):
            start = offset + NLMSGHDR.size
            if length - NLMSGHDR.size >= CN_MSG.size:
                idx, val, seq, _a, size, _f = CN_MSG.unpack_from(view, start)
                payload = start + CN_MSG.size
                end = min(payload + size, offset + length)
                if (idx, val) == (CN_IDX_PROC, CN_VAL_PROC) and end - payload >= 8:
                    what, cpu = struct.unpack_from("=Ii", view, payload)
                    event = parse_proc_event(view[payload:end])
                    yield seq, -1 if what == PROC_EVENT_NONE else cpu, event
        offset += (length + 3) & ~3  # NLMSG_ALIGN


class ProcConnector:
    """The subscribed socket.  ``recv`` returns events; ENOBUFS (the kernel dropped events
    because the receive buffer was full) is counted in ``overflows`` and reading goes on.
    ``lost`` counts the events the kernel numbered but this socket never received (the gaps
    in each CPU's sequence): how many an ENOBUFS cost, which ENOBUFS itself does not say.

    Reads are ``recvmmsg`` (:mod:`.mmsg`): one call takes every datagram queued.  The
    socket blocks in the kernel with ``SO_RCVTIMEO`` as its timeout, not Python's
    ``settimeout``, which polls before every read (bench/findings.md, the sensors
    scenario)."""

    def __init__(self, rcvbuf: int, timeout: float = 0.5) -> None:
        self.overflows = 0
        self.lost = 0
        self._next_seq: dict[int, int] = {}
        self._timeout: float | None = None
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        try:
            self._size_buffer(rcvbuf)
            self.sock.bind((0, CN_IDX_PROC))
            self.sock.settimeout(2.0)
            self.sock.send(listen_message())
            self._await_ack()
            self.sock.setblocking(True)
            self.timeout = timeout
            self._set_timeout(timeout)
        except BaseException:
            self.sock.close()
            raise
        self._buffer: Any = bytearray(RECV_SIZE)
        self._multi = (
            mmsg.MultiReceiver(self.sock.fileno(), RECV_SLOTS, RECV_SLOT)
            if mmsg.available()
            else None
        )

    def _set_timeout(self, seconds: float) -> None:
        if seconds != self._timeout:
            micros = max(int(seconds * 1_000_000), 1)
            value = struct.pack("@ll", micros // 1_000_000, micros % 1_000_000)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
            self._timeout = seconds

    def _size_buffer(self, rcvbuf: int) -> None:
        # SO_RCVBUFFORCE (root) passes net.core.rmem_max; a small value asks for a small
        # buffer on purpose (the overflow test), which SO_RCVBUF gives.
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)

    @property
    def rcvbuf(self) -> int:
        return int(self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    def _await_ack(self) -> None:
        """The kernel answers LISTEN with a PROC_EVENT_NONE whose err is 0 (kernels before
        3.x send nothing: then the first real event proves the subscription)."""
        try:
            while True:
                data = self.sock.recv(RECV_SIZE)
                for event in parse_datagram(data):
                    if isinstance(event, Ack):
                        if event.err:
                            raise OSError(event.err, os.strerror(event.err))
                        return
                    return
        except TimeoutError:
            return

    def recv(self, timeout: float | None = None) -> list[ProcEvent]:
        """The events of the datagrams queued now, waiting up to ``timeout`` seconds
        (default: the connector's) for the first; [] on a timeout or an overflow."""
        self._set_timeout(self.timeout if timeout is None else timeout)
        events: list[ProcEvent] = []
        try:
            if self._multi is None:
                n = self.sock.recv_into(self._buffer)
                self._take(self._buffer, 0, n, events)
                return events
            multi = self._multi
            for offset, n in multi.receive():
                self._take(multi.buffer, offset, n, events)
        except (BlockingIOError, TimeoutError):
            return events
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                self.overflows += 1
                return events
            raise
        return events

    def _take(self, buf: Any, offset: int, n: int, events: list[ProcEvent]) -> None:
        """The events of the datagram at ``buf[offset:offset + n]``, into ``events``; the
        sequence gaps counted in ``lost``."""
        for seq, cpu, event in self._parse(buf, offset, n):
            if cpu >= 0:
                expected = self._next_seq.get(cpu)
                # A number below the expected one is the 32-bit counter wrapping (or a CPU
                # brought back online): start counting from it again.
                if expected is not None and seq > expected:
                    self.lost += seq - expected
                self._next_seq[cpu] = (seq + 1) & 0xFFFFFFFF
            if event is not None:
                events.append(event)

    def _parse(self, buf: Any, at: int, n: int) -> list[tuple[int, int, ProcEvent | None]]:
        """:func:`parse_sequenced` of the buffer's first ``n`` bytes, with a fast path for
        the datagram the kernel sends (one message): one unpack for the three headers
        instead of a generator, a memoryview slice and three unpacks (the parse was a third
        of the sensor thread's CPU in the sensors benchmark)."""
        if n >= HEADERS.size:
            length, kind, _f, _s, _p, idx, val, seq, _a, size, _fl, what, cpu, ts = (
                HEADERS.unpack_from(buf, at)
            )
            if (
                length == n
                and kind not in (NLMSG_NOOP, NLMSG_ERROR)
                and (idx, val) == (CN_IDX_PROC, CN_VAL_PROC)
                and PROC_EVENT_HEADER.size <= size <= n - NLMSGHDR.size - CN_MSG.size
            ):
                rest = size - PROC_EVENT_HEADER.size
                body = at + HEADERS.size
                event: ProcEvent | None = None
                if what == PROC_EVENT_FORK and rest >= FORK.size:
                    event = Fork(ts, *FORK.unpack_from(buf, body))
                elif what == PROC_EVENT_EXEC and rest >= EXEC.size:
                    event = Exec(ts, *EXEC.unpack_from(buf, body))
                elif what == PROC_EVENT_EXIT and rest >= EXIT.size:
                    pid, tgid, code, signum = EXIT.unpack_from(buf, body)
                    if rest >= EXIT.size + EXIT_PARENT.size:
                        ppid, ptgid = EXIT_PARENT.unpack_from(buf, body + EXIT.size)
                        event = Exit(ts, pid, tgid, code, signum, ppid, ptgid)
                    else:
                        event = Exit(ts, pid, tgid, code, signum, None, None)
                elif what in (PROC_EVENT_UID, PROC_EVENT_GID) and rest >= ID.size:
                    pid, tgid, real, effective = ID.unpack_from(buf, body)
                    event = IdChange(ts, pid, tgid, what == PROC_EVENT_GID, real, effective)
                elif what == PROC_EVENT_NONE and rest >= ACK.size:
                    event = Ack(ACK.unpack_from(buf, body)[0])
                return [(seq, -1 if what == PROC_EVENT_NONE else cpu, event)]
        return list(parse_sequenced(memoryview(buf)[at : at + n]))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(listen_message(PROC_CN_MCAST_IGNORE))
        self.sock.close()
