"""A counter shared by the worker processes of one node, so that a change committed in one is
seen by its siblings before the committing request even answers.

The workers of ``garrison serve --workers N`` keep in-memory views that let the hot path skip
the database (the stations with queued jobs, the active hunts).  Each view is refreshed from
the database every fraction of a second, which is fine between nodes but not between the
workers of one node: an operator who creates a job and at once asks for it through the agent
API lands, half the time, on the other worker.  So a worker that commits such a change
increments a counter in a small file of the data directory (shared memory through ``mmap``;
the increment under ``flock`` since it is rare), and every worker compares the counter with
the value it had when it last read the database: a moved counter sends the request down the
full path, which reads the database.  Reading it costs a few hundred nanoseconds and no
system call, so the fast path keeps its shape.

A torn read (an increment landing between the bytes) can only make the value look moved:
that costs one database read, never a missed change.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

_FORMAT = "<Q"
_SIZE = struct.calcsize(_FORMAT)


class SiblingCounter:
    def __init__(self, path: Path) -> None:
        # Private like the rest of the data dir (the counter tells nothing, the dir may later
        # hold more).
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Under the lock: two workers starting together must not both write the header.
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size < _SIZE:
                    os.ftruncate(fd, _SIZE)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(fd, _SIZE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def read(self) -> int:
        if self._map.closed:
            # Closed at the server's stop: every look is a moved counter (a database read).
            return -1
        value: int = struct.unpack_from(_FORMAT, self._map)[0]
        return value

    def bump(self) -> int:
        if self._map.closed:
            return -1
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            value = (self.read() + 1) & 0xFFFF_FFFF_FFFF_FFFF
            struct.pack_into(_FORMAT, self._map, 0, value)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return value

    def close(self) -> None:
        """At the server's stop (each counter holds a descriptor and a mapping); later reads
        count as moved and bumps do nothing."""
        if self._map.closed:
            return
        self._map.close()
        os.close(self._fd)
