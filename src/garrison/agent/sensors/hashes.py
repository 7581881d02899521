"""File hashes for the sensors: a cache, and a bounded worker for large files.

The cache is keyed by (device, inode, size, mtime, ctime): a file rewritten in place or
replaced gets a new key, so a stale hash is never served.  A file up to ``inline_max``
bytes is hashed on the event path (a cache miss costs a few milliseconds once); a larger
one is handed, as an open descriptor, to one background thread with a short queue, and the
event says ``hash_status = "pending"``.  Later events of the same file (the process's own
``process_stopped``, the next exec of that binary) carry the hashes from the cache.  When
the queue is full the file is not hashed this time (``pending`` still; the next event of
that file tries again): the event path never waits.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass

from garrison.agent.sensors import statx

log = logging.getLogger("garrison.agent.sensors")

CHUNK = 1024 * 1024
CACHE_SIZE = 8192
WORKER_QUEUE = 16

FileKey = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class Digests:
    md5: str
    sha256: str


@dataclass(frozen=True)
class FileFacts:
    """``status``: ok, pending, too_large or unreadable (special file, I/O error)."""

    size: int
    mtime: float
    ctime: float
    uid: int
    gid: int
    mode: int
    status: str
    digests: Digests | None = None
    key: FileKey | None = None
    btime: float | None = None  # birth time (statx), where the filesystem records it


def file_key(st: os.stat_result) -> FileKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def digest_fd(fd: int, limit: int) -> Digests | None:
    """MD5 and SHA-256 of an open file from its start; None past ``limit`` bytes or on an
    I/O error (a file truncated under us just hashes what is there)."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    offset = 0
    try:
        while True:
            chunk = os.pread(fd, CHUNK, offset)
            if not chunk:
                break
            offset += len(chunk)
            if offset > limit:
                return None
            md5.update(chunk)
            sha.update(chunk)
    except OSError:
        return None
    return Digests(md5.hexdigest(), sha.hexdigest())


def _made(
    st: os.stat_result, status: str, digests: Digests | None = None, btime: float | None = None
) -> FileFacts:
    return FileFacts(
        st.st_size,
        st.st_mtime,
        st.st_ctime,
        st.st_uid,
        st.st_gid,
        st.st_mode,
        status,
        digests,
        file_key(st),
        btime,
    )


class HashCache:
    def __init__(
        self,
        inline_max: int,
        max_size: int,
        cache_size: int = CACHE_SIZE,
        worker_queue: int = WORKER_QUEUE,
    ) -> None:
        self.inline_max = inline_max
        self.max_size = max_size
        self.cache_size = cache_size
        self._cache: OrderedDict[FileKey, Digests] = OrderedDict()
        self._births: OrderedDict[FileKey, float | None] = OrderedDict()
        self._pending: set[FileKey] = set()
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[FileKey, int] | None] = queue.Queue(worker_queue)
        self._thread: threading.Thread | None = None
        self.hits = 0
        self.misses = 0

    # -- the cache --------------------------------------------------------------------------

    def _birth(self, key: FileKey, fd: int) -> float | None:
        """The file's birth time, read once per file version (one statx on a miss)."""
        if key in self._births:
            return self._births[key]
        born = statx.birth_time_fd(fd)
        with self._lock:
            self._births[key] = born
            while len(self._births) > self.cache_size:
                self._births.popitem(last=False)
        return born

    def get(self, key: FileKey) -> Digests | None:
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                self.hits += 1
            return found

    def put(self, key: FileKey, digests: Digests) -> None:
        with self._lock:
            self._cache[key] = digests
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def get_for(self, facts: FileFacts) -> Digests | None:
        return self.get(facts.key) if facts.key is not None else None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    # -- hashing ----------------------------------------------------------------------------

    def facts(self, path: str, dir_fd: int | None = None) -> FileFacts | None:
        """The file's stat and hashes (from the cache, hashed now, or queued); None when it
        cannot be opened at all.

        A cache hit costs one ``stat``: the key (device, inode, size, mtime, ctime) says
        the content is the one hashed, so the file is opened only to hash it (a miss) --
        the open, fstat and close of every event were a tenth of an exec's enrichment in
        the sensors benchmark (bench/findings.md).  ``dir_fd``: ``path`` is relative to
        that directory (``exe`` of an open ``/proc/<pid>``)."""
        try:
            st = os.stat(path, dir_fd=dir_fd)
        except OSError:
            return None
        if stat.S_ISREG(st.st_mode):
            key = file_key(st)
            cached = self.get(key)
            if cached is not None:
                # The birth time was read (statx) when this version was first hashed.
                with self._lock:
                    born = self._births.get(key)
                return _made(st, "ok", cached, born)
        try:
            fd = os.open(
                path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, dir_fd=dir_fd
            )
        except OSError:
            return None
        handed = False
        try:
            st = os.fstat(fd)
            facts, handed = self._facts_fd(fd, st)
            return facts
        except OSError:
            return None
        finally:
            if not handed:
                os.close(fd)

    def _facts_fd(self, fd: int, st: os.stat_result) -> tuple[FileFacts, bool]:
        def made(status: str, digests: Digests | None = None) -> FileFacts:
            return _made(st, status, digests, self._birth(key, fd))

        key = file_key(st)
        if not stat.S_ISREG(st.st_mode):
            return made("unreadable"), False  # FIFOs, devices, sockets: never read
        cached = self.get(key)
        if cached is not None:
            return made("ok", cached), False
        if st.st_size > self.max_size:
            return made("too_large"), False
        with self._lock:
            self.misses += 1
        if st.st_size <= self.inline_max:
            digests = digest_fd(fd, self.max_size)
            if digests is None:
                return made("unreadable"), False
            self.put(key, digests)
            return made("ok", digests), False
        return made("pending"), self._queue_large(key, fd)

    def _queue_large(self, key: FileKey, fd: int) -> bool:
        """True when the worker took the descriptor (and will close it)."""
        with self._lock:
            if key in self._pending:
                return False
            self._pending.add(key)
        self._ensure_worker()
        try:
            self._queue.put_nowait((key, fd))
        except queue.Full:
            with self._lock:
                self._pending.discard(key)
            return False
        return True

    def _ensure_worker(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="sensor-hasher", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            key, fd = item
            try:
                digests = digest_fd(fd, self.max_size)
                if digests is not None:
                    self.put(key, digests)
            finally:
                os.close(fd)
                with self._lock:
                    self._pending.discard(key)

    def close(self) -> None:
        if self._thread is not None:
            # Drain what is queued without hashing it, then stop the thread.
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    with contextlib.suppress(OSError):
                        os.close(item[1])
            self._queue.put(None)
            self._thread.join(5)
            self._thread = None
