"""NETLINK_SOCK_DIAG (inet_diag): the kernel's own list of listening sockets.

One dump request per (family, protocol) returns an ``inet_diag_msg`` per socket: addresses,
ports, state, owning uid and the socket's inode (what ``/proc/<pid>/fd`` links name).  The
layouts (``linux/inet_diag.h``, ``linux/netlink.h``) are written with :mod:`struct`; no
library.  Ports and addresses are big-endian on the wire; everything else is host order.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLMSG_ERROR = 2
NLMSG_DONE = 3

TCP_ESTABLISHED = 1
TCP_CLOSE = 7  # an unconnected UDP socket: bound, receiving from anyone ("UNCONN")
TCP_LISTEN = 10

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_sockid: sport, dport (be16), src[4], dst[4] (be32), if, cookie[2]
SOCKID = struct.Struct(">HH16s16s")
SOCKID_TAIL = struct.Struct("=III")
SOCKID_SIZE = SOCKID.size + SOCKID_TAIL.size  # 48
# inet_diag_req_v2: family, protocol, ext, pad, states; then the sockid
REQ_HEAD = struct.Struct("=BBBxI")
# inet_diag_msg: family, state, timer, retrans; sockid; expires, rqueue, wqueue, uid, inode
MSG_HEAD = struct.Struct("=BBBB")
MSG_TAIL = struct.Struct("=IIIII")
MSG_SIZE = MSG_HEAD.size + SOCKID_SIZE + MSG_TAIL.size  # 72

# What a sweep asks for: TCP in LISTEN, UDP unconnected (what `ss -l` calls listening).
QUERIES: tuple[tuple[int, int, int, str], ...] = (
    (socket.AF_INET, socket.IPPROTO_TCP, 1 << TCP_LISTEN, "tcp"),
    (socket.AF_INET6, socket.IPPROTO_TCP, 1 << TCP_LISTEN, "tcp"),
    (socket.AF_INET, socket.IPPROTO_UDP, 1 << TCP_CLOSE, "udp"),
    (socket.AF_INET6, socket.IPPROTO_UDP, 1 << TCP_CLOSE, "udp"),
)
ALL_STATES = 0xFFFFFFFF
# Every socket, whatever its state (ListConnections).
ALL_QUERIES: tuple[tuple[int, int, int, str], ...] = tuple(
    (family, protocol, ALL_STATES, name) for family, protocol, _states, name in QUERIES
)
# The kernel's TCP states (include/net/tcp_states.h); an unconnected UDP socket is CLOSE.
STATE_NAMES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
    12: "NEW_SYN_RECV",
}  # fmt: skip


class SockDiagError(OSError):
    """The kernel answered a dump with an error (errno in ``errno``)."""


@dataclass(frozen=True)
class ListeningSocket:
    protocol: str  # tcp or udp
    ip_version: int  # 4 or 6
    address: str
    port: int
    inode: int
    uid: int
    cookie: int
    interface: int
    # Filled for every socket, used by ListConnections (a listening one has no peer).
    state: int = 0
    remote_address: str = ""
    remote_port: int = 0

    @property
    def key(self) -> tuple[str, int, str, int, int, int]:
        """One socket, for as long as it lives: the cookie is unique per boot, the inode
        tells the socket apart when the kernel gives no cookie."""
        return (self.protocol, self.ip_version, self.address, self.port, self.inode, self.cookie)


def request(family: int, protocol: int, states: int, seq: int) -> bytes:
    body = REQ_HEAD.pack(family, protocol, 0, states) + bytes(SOCKID_SIZE)
    head = NLMSGHDR.pack(NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY,
                         NLM_F_REQUEST | NLM_F_DUMP, seq, 0)  # fmt: skip
    return head + body


def _address(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    return str(ipaddress.IPv6Address(raw[:16]))


def parse_msg(payload: bytes, protocol: str) -> ListeningSocket | None:
    """One ``inet_diag_msg``; None when it is too short or of another family."""
    if len(payload) < MSG_SIZE:
        return None
    family, state, _timer, _retrans = MSG_HEAD.unpack_from(payload, 0)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    sport, dport, src, dst = SOCKID.unpack_from(payload, MSG_HEAD.size)
    interface, cookie_lo, cookie_hi = SOCKID_TAIL.unpack_from(payload, MSG_HEAD.size + SOCKID.size)
    _expires, _rq, _wq, uid, inode = MSG_TAIL.unpack_from(payload, MSG_HEAD.size + SOCKID_SIZE)
    return ListeningSocket(
        protocol=protocol,
        ip_version=4 if family == socket.AF_INET else 6,
        address=_address(family, src),
        port=sport,
        inode=inode,
        uid=uid,
        cookie=cookie_hi << 32 | cookie_lo,
        interface=interface,
        state=state,
        remote_address=_address(family, dst),
        remote_port=dport,
    )


def parse_messages(data: bytes, seq: int, protocol: str) -> tuple[list[ListeningSocket], bool]:
    """The sockets in one datagram of a dump, and whether the dump is done.  Messages of
    another sequence (a stale answer) are skipped; an NLMSG_ERROR raises."""
    out: list[ListeningSocket] = []
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, _flags, msg_seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size or offset + length > len(data):
            break
        payload = data[offset + NLMSGHDR.size : offset + length]
        offset += (length + 3) & ~3
        if msg_seq != seq:
            continue
        if kind == NLMSG_DONE:
            return out, True
        if kind == NLMSG_ERROR:
            code = -struct.unpack_from("=i", payload, 0)[0] if len(payload) >= 4 else 0
            if code:
                raise SockDiagError(code, os.strerror(code))
            continue
        if kind == SOCK_DIAG_BY_FAMILY:
            found = parse_msg(payload, protocol)
            if found is not None:
                out.append(found)
    return out, False


class SockDiag:
    """A NETLINK_SOCK_DIAG socket; :meth:`listening` is one sweep (four dumps)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        self.sock.bind((0, 0))
        self.sock.settimeout(5.0)
        self._seq = 0

    def close(self) -> None:
        self.sock.close()

    def dump(self, family: int, protocol: int, states: int, name: str) -> Iterator[ListeningSocket]:
        self._seq += 1
        seq = self._seq
        self.sock.send(request(family, protocol, states, seq))
        while True:
            data = self.sock.recv(65536)
            found, done = parse_messages(data, seq, name)
            yield from found
            if done:
                return

    def listening(self) -> list[ListeningSocket]:
        return self.sweep(QUERIES)

    def sockets(self) -> list[ListeningSocket]:
        """Every TCP and UDP socket, in any state."""
        return self.sweep(ALL_QUERIES)

    def sweep(self, queries: tuple[tuple[int, int, int, str], ...]) -> list[ListeningSocket]:
        out: list[ListeningSocket] = []
        for family, protocol, states, name in queries:
            try:
                out.extend(self.dump(family, protocol, states, name))
            except SockDiagError as exc:
                # No IPv6 in this kernel (or no UDP diag module): that family has no sockets.
                if exc.errno in (2, 22, 97):  # ENOENT, EINVAL, EAFNOSUPPORT
                    continue
                raise
        return out
