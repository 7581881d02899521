"""A file's birth (creation) time: ``statx(2)`` with ``STATX_BTIME``.

``os.stat`` has no birth time on Linux (``st_birthtime`` is BSD, macOS and, since Python
3.12, Windows only), and Python has no ``os.statx`` before 3.15: the agent calls glibc's
``statx`` (2.28 and later) through ctypes.  The kernel answers the birth time only where the
filesystem records it (ext4 with 256-byte inodes, xfs v5, btrfs, tmpfs on current kernels):
``stx_mask`` says whether it did.  Where it did not, or answered 0 (seen on this project's CI
root filesystem, an ext4 without the inode field), the answer is None, never a guess.

``struct statx`` (``linux/stat.h``): ``stx_mask`` is its first ``__u32``; ``stx_btime``, a
``struct statx_timestamp { __s64 tv_sec; __u32 tv_nsec; __s32 reserved; }``, is at byte 80
of the 256-byte structure.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from collections.abc import Callable
from typing import Any

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
STATX_BTIME = 0x800
STATX_SIZE = 256
BTIME_OFFSET = 80
_MASK = struct.Struct("=I")
_TIMESTAMP = struct.Struct("=qI")


def _load() -> Callable[..., int] | None:
    try:
        libc: Any = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function: Any = libc.statx
    except (OSError, AttributeError):
        return None  # not glibc 2.28+ (or not Linux): no birth times
    function.argtypes = (
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_void_p,
    )
    function.restype = ctypes.c_int
    call: Callable[..., int] = function
    return call


_STATX = _load()


def available() -> bool:
    return _STATX is not None


def _btime(dirfd: int, path: bytes, flags: int) -> float | None:
    if _STATX is None:
        return None
    buffer = ctypes.create_string_buffer(STATX_SIZE)
    if _STATX(dirfd, path, flags, STATX_BTIME, buffer) != 0:
        return None
    raw = buffer.raw
    mask: int = _MASK.unpack_from(raw, 0)[0]
    if not mask & STATX_BTIME:
        return None  # the filesystem does not record it
    seconds: int
    nanoseconds: int
    seconds, nanoseconds = _TIMESTAMP.unpack_from(raw, BTIME_OFFSET)
    if seconds <= 0:
        return None  # "recorded" as the epoch: the inode has no room for it
    return seconds + nanoseconds / 1e9


def birth_time(path: str) -> float | None:
    """The birth time of ``path`` itself (a symlink's own, not its target's), epoch
    seconds; None when the filesystem does not record it or the file is gone."""
    return _btime(AT_FDCWD, os.fsencode(path), AT_SYMLINK_NOFOLLOW)


def birth_time_fd(fd: int) -> float | None:
    """The birth time of the open file ``fd``."""
    return _btime(fd, b"", AT_EMPTY_PATH)
