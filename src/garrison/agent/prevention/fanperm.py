"""fanotify permission events: the flags, the event records with their descriptor, and the
answer (``linux/fanotify.h``).

The sensors' notification group (``sensors/fanotify.py``) never names these: a permission
event holds the process that triggered it until someone answers.  This module is the only
place that asks for them, and :mod:`.listener` the only one that answers.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from garrison.agent.sensors import fanotify

FAN_CLASS_CONTENT = 0x00000004
FAN_UNLIMITED_QUEUE = 0x00000010

FAN_CLOSE_WRITE = fanotify.FAN_CLOSE_WRITE
FAN_OPEN_PERM = 0x00010000
FAN_OPEN_EXEC_PERM = 0x00040000
FAN_Q_OVERFLOW = fanotify.FAN_Q_OVERFLOW
PERMISSION = FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM

FAN_ALLOW = 0x01
FAN_DENY = 0x02

FAN_MARK_ADD = fanotify.FAN_MARK_ADD
FAN_MARK_MOUNT = fanotify.FAN_MARK_MOUNT
FAN_MARK_FILESYSTEM = fanotify.FAN_MARK_FILESYSTEM

METADATA = fanotify.METADATA
# struct fanotify_response { __s32 fd; __u32 response; }
RESPONSE = struct.Struct("=iI")


@dataclass(frozen=True)
class PermEvent:
    """One event of a descriptor-reporting group: ``fd`` is an open descriptor of the object
    (the reader owns it and must close it), -1 on a queue overflow."""

    mask: int
    fd: int
    pid: int

    @property
    def permission(self) -> bool:
        return bool(self.mask & PERMISSION)


def parse(buf: bytes) -> list[PermEvent]:
    """Every whole event of one ``read`` (a truncated tail is skipped)."""
    out: list[PermEvent] = []
    offset = 0
    while offset + METADATA.size <= len(buf):
        event_len, _vers, _res, _mlen, mask, fd, pid = METADATA.unpack_from(buf, offset)
        if event_len < METADATA.size or offset + event_len > len(buf):
            break
        out.append(PermEvent(mask, fd, pid))
        offset += event_len
    return out


def init() -> int:
    """A content-class group (permission events, before the content is read), descriptors
    opened read-only and close-on-exec, non-blocking reads."""
    flags = FAN_CLASS_CONTENT | fanotify.FAN_CLOEXEC | fanotify.FAN_NONBLOCK | FAN_UNLIMITED_QUEUE
    return fanotify.init_with(flags, os.O_RDONLY | os.O_CLOEXEC | os.O_LARGEFILE)


def mark(group: int, flags: int, mask: int, path: str) -> None:
    fanotify.mark(group, flags, mask, path)


def answer(group: int, fd: int, allow: bool) -> None:
    os.write(group, RESPONSE.pack(fd, FAN_ALLOW if allow else FAN_DENY))
