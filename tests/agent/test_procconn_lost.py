"""The process connector counts the events the kernel numbered but never delivered (the
gaps in each CPU's ``cn_msg.seq``): an ENOBUFS says only that some were lost."""

from __future__ import annotations

import errno
import struct

from garrison.agent.sensors import procconn


def _datagram(seq: int, cpu: int, what: int = procconn.PROC_EVENT_EXEC, pid: int = 42) -> bytes:
    body = struct.pack("=ii", pid, pid)
    event = procconn.PROC_EVENT_HEADER.pack(what, cpu & 0xFFFFFFFF, 1_000) + body
    cn = procconn.CN_MSG.pack(procconn.CN_IDX_PROC, procconn.CN_VAL_PROC, seq, 0, len(event), 0)
    payload = cn + event
    return procconn.NLMSGHDR.pack(procconn.NLMSGHDR.size + len(payload), 3, 0, 0, 0) + payload


class FakeSocket:
    def __init__(self, items: list[bytes | OSError]) -> None:
        self.items = items

    def recv_into(self, buffer: bytearray) -> int:
        item = self.items.pop(0)
        if isinstance(item, OSError):
            raise item
        buffer[: len(item)] = item
        return len(item)


def _connector(items: list[bytes | OSError]) -> procconn.ProcConnector:
    conn = object.__new__(procconn.ProcConnector)
    conn.overflows, conn.lost, conn._next_seq = 0, 0, {}
    conn._buffer = bytearray(procconn.RECV_SIZE)
    conn._multi = None  # one datagram per recv, from the fake socket
    conn.timeout, conn._timeout = 0.5, 0.5
    conn.sock = FakeSocket(items)  # type: ignore[assignment]
    return conn


def test_gaps_in_each_cpus_sequence_are_counted_as_lost_events() -> None:
    enobufs = OSError(errno.ENOBUFS, "No buffer space available")
    conn = _connector(
        [
            _datagram(10, 0),
            _datagram(500, 1),  # the first of CPU 1: nothing to compare with
            _datagram(11, 0),
            enobufs,
            _datagram(15, 0),  # 12, 13, 14 lost
            _datagram(504, 1, what=0x4),  # a uid change (unused) still counts: 501-503 lost
            _datagram(7, -1, what=procconn.PROC_EVENT_NONE),  # the LISTEN answer: no CPU
            _datagram(16, 0),
        ]
    )
    events = [conn.recv() for _ in range(8)]
    assert [len(e) for e in events] == [1, 1, 1, 0, 1, 0, 1, 1]  # the answer is an Ack
    assert conn.overflows == 1
    assert conn.lost == 3 + 3


def test_a_counter_that_wraps_is_not_a_loss() -> None:
    conn = _connector([_datagram(0xFFFFFFFF, 0), _datagram(0, 0), _datagram(1, 0)])
    for _ in range(3):
        conn.recv()
    assert conn.lost == 0


def _message(seq: int, what: int, body: bytes) -> bytes:
    event = procconn.PROC_EVENT_HEADER.pack(what, 1, 5_000) + body
    cn = procconn.CN_MSG.pack(procconn.CN_IDX_PROC, procconn.CN_VAL_PROC, seq, 0, len(event), 0)
    payload = cn + event
    return procconn.NLMSGHDR.pack(procconn.NLMSGHDR.size + len(payload), 3, 0, 0, 0) + payload


def test_the_one_unpack_fast_path_reads_what_the_general_parser_reads() -> None:
    datagrams = [
        _message(1, procconn.PROC_EVENT_FORK, struct.pack("=iiii", 10, 10, 11, 11)),
        _message(2, procconn.PROC_EVENT_EXEC, struct.pack("=ii", 11, 11)),
        _message(3, procconn.PROC_EVENT_EXIT, struct.pack("=iiIIii", 11, 11, 256, 17, 10, 10)),
        _message(4, procconn.PROC_EVENT_EXIT, struct.pack("=iiII", 11, 11, 9, 17)),  # old
        _message(5, 0x4, struct.pack("=iiII", 11, 11, 0, 0)),  # a uid change: unused
        _message(6, procconn.PROC_EVENT_EXEC, b"\x00\x00"),  # truncated
        _message(7, procconn.PROC_EVENT_EXEC, struct.pack("=ii", 1, 1))
        + _message(8, procconn.PROC_EVENT_EXEC, struct.pack("=ii", 2, 2)),  # two in one
    ]
    conn = _connector(list(datagrams))
    for datagram in datagrams:
        conn.sock.recv_into(conn._buffer)
        assert conn._parse(conn._buffer, 0, len(datagram)) == list(
            procconn.parse_sequenced(datagram)
        )
    exit_events = list(procconn.parse_datagram(datagrams[2]))
    assert exit_events == [procconn.Exit(5_000, 11, 11, 256, 17, 10, 10)]
