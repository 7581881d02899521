"""fanotify through ctypes: the calls, the flags and the event records (``linux/fanotify.h``).

Only notification classes are used (``FAN_CLASS_NOTIF``): a permission event
(``FAN_*_PERM``) would hold every process that touches a marked filesystem until the agent
answers, so this module does not even name them.

The group reports file handles (``FAN_REPORT_DFID_NAME``): an event carries no open
descriptor but the parent directory's handle and the entry's name, so a file created and
deleted at once is still reported (by name), and no descriptor is leaked by a slow reader.
A handle is turned into a path with ``open_by_handle_at`` on a descriptor of the same
filesystem (``CAP_DAC_READ_SEARCH``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from dataclasses import dataclass

FAN_CLOEXEC = 0x00000001
FAN_NONBLOCK = 0x00000002
FAN_CLASS_NOTIF = 0x00000000
FAN_REPORT_FID = 0x00000200
FAN_REPORT_DIR_FID = 0x00000400
FAN_REPORT_NAME = 0x00000800
FAN_REPORT_DFID_NAME = FAN_REPORT_DIR_FID | FAN_REPORT_NAME

FAN_MARK_ADD = 0x00000001
FAN_MARK_REMOVE = 0x00000002
FAN_MARK_MOUNT = 0x00000010
FAN_MARK_FILESYSTEM = 0x00000100

FAN_CLOSE_WRITE = 0x00000008
FAN_MOVED_TO = 0x00000080
FAN_CREATE = 0x00000100
FAN_Q_OVERFLOW = 0x00004000
FAN_ONDIR = 0x40000000

FAN_EVENT_INFO_TYPE_FID = 1
FAN_EVENT_INFO_TYPE_DFID_NAME = 2
FAN_EVENT_INFO_TYPE_DFID = 3
FANOTIFY_METADATA_VERSION = 3
FAN_NOFD = -1
AT_FDCWD = -100
O_PATH = getattr(os, "O_PATH", 0o10000000)

# struct fanotify_event_metadata { __u32 event_len; __u8 vers; __u8 reserved;
#   __u16 metadata_len; __aligned_u64 mask; __s32 fd; __s32 pid; }
METADATA = struct.Struct("=IBBHQii")
# struct fanotify_event_info_header { __u8 info_type; __u8 pad; __u16 len; }
INFO_HEADER = struct.Struct("=BBH")
# struct fanotify_event_info_fid { header; __kernel_fsid_t fsid (int val[2]);
#   unsigned char handle[] } and handle is a struct file_handle { __u32 handle_bytes;
#   int handle_type; unsigned char f_handle[]; }, then for *_DFID_NAME a NUL-ended name.
FSID = struct.Struct("=ii")
FILE_HANDLE = struct.Struct("=Ii")
READ_SIZE = 256 * 1024


@dataclass(frozen=True)
class Fid:
    """One info record: which filesystem, the object's handle (a whole ``struct
    file_handle``, ready for ``open_by_handle_at``) and, for a directory entry, its name."""

    info_type: int
    fsid: int
    handle: bytes
    name: str | None


@dataclass(frozen=True)
class FanEvent:
    mask: int
    pid: int
    fids: tuple[Fid, ...]

    @property
    def overflow(self) -> bool:
        return bool(self.mask & FAN_Q_OVERFLOW)

    def dir_entry(self) -> Fid | None:
        for fid in self.fids:
            if fid.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME and fid.name is not None:
                return fid
        return None


def fsid_key(val0: int, val1: int) -> int:
    """The kernel's two-int fsid as one number, the way glibc's ``statvfs`` folds it into
    ``f_fsid`` (``os.statvfs(path).f_fsid``), so a record finds its mount descriptor."""
    return (val0 & 0xFFFFFFFF) | ((val1 & 0xFFFFFFFF) << 32)


def _parse_fid(buf: bytes, pos: int, end: int, info_type: int) -> Fid | None:
    if pos + INFO_HEADER.size + FSID.size + FILE_HANDLE.size > end:
        return None
    val0, val1 = FSID.unpack_from(buf, pos + INFO_HEADER.size)
    start = pos + INFO_HEADER.size + FSID.size
    handle_bytes, _handle_type = FILE_HANDLE.unpack_from(buf, start)
    handle_end = start + FILE_HANDLE.size + handle_bytes
    if handle_end > end:
        return None
    name: str | None = None
    if info_type == FAN_EVENT_INFO_TYPE_DFID_NAME:
        raw = buf[handle_end:end]
        name = raw.split(b"\x00", 1)[0].decode("utf-8", errors="surrogateescape")
    return Fid(info_type, fsid_key(val0, val1), bytes(buf[start:handle_end]), name)


def parse_events(buf: bytes) -> list[FanEvent]:
    """Every whole event of one ``read``; a truncated tail or a record that does not fit
    its event is skipped (the kernel never sends one; a bug must not crash the sensor)."""
    events: list[FanEvent] = []
    offset = 0
    while offset + METADATA.size <= len(buf):
        event_len, vers, _reserved, metadata_len, mask, fd, pid = METADATA.unpack_from(buf, offset)
        if event_len < METADATA.size or offset + event_len > len(buf):
            break
        if fd >= 0:  # a descriptor-reporting group would send one; never leak it
            os.close(fd)
        end = offset + event_len
        fids: list[Fid] = []
        pos = offset + max(metadata_len, METADATA.size)
        if vers == FANOTIFY_METADATA_VERSION:
            while pos + INFO_HEADER.size <= end:
                info_type, _pad, length = INFO_HEADER.unpack_from(buf, pos)
                if length < INFO_HEADER.size or pos + length > end:
                    break
                if info_type in (
                    FAN_EVENT_INFO_TYPE_FID,
                    FAN_EVENT_INFO_TYPE_DFID_NAME,
                    FAN_EVENT_INFO_TYPE_DFID,
                ):
                    fid = _parse_fid(buf, pos, pos + length, info_type)
                    if fid is not None:
                        fids.append(fid)
                pos += length
        events.append(FanEvent(mask, pid, tuple(fids)))
        offset += event_len
    return events


class _Libc:
    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        self.init = libc.fanotify_init
        self.init.argtypes = [ctypes.c_uint, ctypes.c_uint]
        self.init.restype = ctypes.c_int
        self.mark = libc.fanotify_mark
        self.mark.argtypes = [
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint64,
            ctypes.c_int,
            ctypes.c_char_p,
        ]
        self.mark.restype = ctypes.c_int
        self.open_by_handle_at = libc.open_by_handle_at
        self.open_by_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.open_by_handle_at.restype = ctypes.c_int


_libc: _Libc | None = None


def libc() -> _Libc:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def init(flags: int) -> int:
    """A fanotify group's descriptor (``event_f_flags`` is unused by handle groups)."""
    return init_with(flags, os.O_RDONLY | os.O_CLOEXEC)


def init_with(flags: int, event_f_flags: int) -> int:
    """A group whose events carry descriptors opened with ``event_f_flags``."""
    return _check(libc().init(flags, event_f_flags), "fanotify_init")


def mark(fd: int, flags: int, mask: int, path: str) -> None:
    _check(libc().mark(fd, flags, mask, AT_FDCWD, os.fsencode(path)), f"fanotify_mark {path}")


def open_by_handle(mount_fd: int, handle: bytes, flags: int = O_PATH | os.O_CLOEXEC) -> int:
    return _check(libc().open_by_handle_at(mount_fd, handle, flags), "open_by_handle_at")
