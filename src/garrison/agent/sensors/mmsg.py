"""Many datagrams in one system call: ``recvmmsg(2)`` through ctypes.

Python's socket module reads one datagram per call.  The process connector sends three or
four datagrams per exec (fork, exec, comm, exit), so at 1,000 execs/s a reader made some
4,000 ``recvfrom`` calls a second, each a return to the kernel, a GIL release and
re-acquire.  ``recvmmsg`` with ``MSG_WAITFORONE`` waits for the first datagram and then
takes, in the same call, every datagram already queued (up to the number of slots): the
reader pays one call per wake-up, not per datagram (bench/findings.md, the sensors
scenario).  The socket's ``SO_RCVTIMEO`` bounds the wait.

Each slot is a fixed ``slot`` bytes of one buffer; a datagram larger than a slot comes
back cut, with ``MSG_TRUNC`` in its flags (the caller's parser skips what does not fit).
Where libc has no ``recvmmsg`` (not Linux, or not glibc/musl), :func:`available` is False
and the caller reads one datagram at a time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Callable
from typing import Any

MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20
MSG_WAITFORONE = 0x10000


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _MMsgHdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint))


def _load() -> Callable[..., int] | None:
    try:
        libc: Any = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function: Any = libc.recvmmsg
    except (OSError, AttributeError):
        return None
    function.argtypes = (
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_void_p,
    )
    function.restype = ctypes.c_int
    call: Callable[..., int] = function
    return call


_RECVMMSG = _load()


def available() -> bool:
    return _RECVMMSG is not None


class MultiReceiver:
    """``slots`` receive buffers of ``slot`` bytes each, set up once; :meth:`receive`
    fills them.  ``buffer`` holds slot ``i`` at ``i * slot``."""

    def __init__(self, fd: int, slots: int, slot: int) -> None:
        if _RECVMMSG is None:
            raise OSError(errno.ENOSYS, "recvmmsg is not available")
        self.fd, self.slots, self.slot = fd, slots, slot
        self.buffer = ctypes.create_string_buffer(slots * slot)
        self._iovecs = (_IoVec * slots)()
        self._headers = (_MMsgHdr * slots)()
        base = ctypes.addressof(self.buffer)
        for i in range(slots):
            self._iovecs[i].iov_base = base + i * slot
            self._iovecs[i].iov_len = slot
            self._headers[i].msg_hdr.msg_iov = ctypes.pointer(self._iovecs[i])
            self._headers[i].msg_hdr.msg_iovlen = 1
        self._address = ctypes.addressof(self._headers)

    def receive(self, wait: bool = True) -> list[tuple[int, int]]:
        """(offset, length) of each datagram read, in order; [] when none came within the
        socket's timeout (or at once, ``wait`` False).  Raises OSError (ENOBUFS: the
        kernel dropped datagrams) like ``recv``."""
        flags = MSG_WAITFORONE if wait else MSG_DONTWAIT
        call = _RECVMMSG
        if call is None:  # pragma: no cover - checked in __init__
            return []
        n = call(self.fd, self._address, self.slots, flags, None)
        if n < 0:
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return []
            raise OSError(err, os.strerror(err))
        headers = self._headers
        slot = self.slot
        return [(i * slot, headers[i].msg_len) for i in range(n)]
