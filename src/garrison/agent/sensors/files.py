"""The file sensor: ``file_created`` for files and directories created in watched trees.

fanotify (:mod:`.fanotify`) with a *filesystem* mark on each filesystem holding a watched
path: a mark on a directory inode sees only its direct children, a mount mark cannot report
directory-entry events, so the whole filesystem is marked and the events are filtered here
by path (watched prefixes, then exclusions).  Only ``FAN_CREATE`` and ``FAN_CLOSE_WRITE``
(with ``FAN_ONDIR``) are asked for: notifications, never permission events.

A regular file is reported when its creator closes it after writing (``FAN_CLOSE_WRITE``),
so its hashes are those of what was written; a file still open ``hash_wait`` seconds after
its creation is reported then, without hashes (``hash_status = "still_open"``).  A
directory, symlink, FIFO or device is reported at its creation.  The creating process is
the pid the kernel gives with the ``FAN_CREATE`` event, read from ``/proc`` at once.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import select
import stat
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from garrison.agent import host
from garrison.agent.scan.engine import excluded
from garrison.agent.sensors import fanotify, procinfo, statx
from garrison.agent.sensors.base import Sensor, SensorState, SensorUnavailableError, Sink
from garrison.agent.sensors.fanotify import FanEvent, Fid
from garrison.agent.sensors.hashes import HashCache

log = logging.getLogger("garrison.agent.sensors.files")

PENDING_MAX = 8192  # files created and not closed yet
DIR_CACHE = 4096  # directory handle -> path
DIR_TTL = 2.0  # seconds a resolved directory path is trusted (a renamed directory)
EVENT_MASK = fanotify.FAN_CREATE | fanotify.FAN_CLOSE_WRITE | fanotify.FAN_ONDIR
INIT_FLAGS = (
    fanotify.FAN_CLASS_NOTIF
    | fanotify.FAN_CLOEXEC
    | fanotify.FAN_NONBLOCK
    | fanotify.FAN_REPORT_DFID_NAME
)

TYPES = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "char_device"),
    (stat.S_ISBLK, "block_device"),
)


def file_type(mode: int) -> str:
    for test, name in TYPES:
        if test(mode):
            return name
    return "unknown"


def watched(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def event_id(path: str, st_dev: int, st_ino: int, created_ns: int) -> str:
    """One kernel event, one id: queued twice (a retry, a restart), it is stored once."""
    text = f"file_created|{procinfo.boot_id()}|{st_dev}|{st_ino}|{path}|{created_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Creation:
    """A ``FAN_CREATE`` seen, waiting for its ``FAN_CLOSE_WRITE`` (regular files)."""

    path: str
    created: float
    created_ns: int
    actor: dict[str, Any]


class FileSensor(Sensor):
    name = "file"

    def __init__(
        self,
        hashes: HashCache,
        paths: list[str],
        exclude: list[str],
        hash_wait: float = 5.0,
        needs_root: bool = True,
    ) -> None:
        super().__init__()
        self.hashes = hashes
        self.paths = [p for p in paths if p]
        self.exclude = exclude
        self.hash_wait = hash_wait
        self.needs_root = needs_root
        self.roots: list[str] = []
        self.missing: list[str] = []
        self.unresolved = 0  # events whose directory could not be resolved (gone)
        self.pending: OrderedDict[tuple[int, bytes, str], Creation] = OrderedDict()
        self._dirs: OrderedDict[tuple[int, bytes], tuple[str | None, float]] = OrderedDict()
        self._mounts: dict[int, int] = {}  # fsid -> a descriptor on that filesystem
        self._fd = -1
        self._sink: Sink | None = None
        self._self_pid = os.getpid()
        self._host = host.hostname()
        self._os = host.platform_name()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, sink: Sink) -> bool:
        running = super().start(sink)
        if running and self.missing:
            # Running, but not everywhere it was asked to: the status says so.
            self._set(SensorState.RUNNING, "not watched (missing): " + ", ".join(self.missing))
            log.warning("file sensor: watched paths missing: %s", ", ".join(self.missing))
        return running

    def _start(self, sink: Sink) -> None:
        if not os.path.isdir("/proc/self"):
            raise SensorUnavailableError("needs Linux (fanotify)")
        if self.needs_root and os.geteuid() != 0:
            raise SensorUnavailableError("needs root")
        if not self.paths:
            raise SensorUnavailableError("no watched paths (sensors.file_paths is empty)")
        try:
            self._fd = fanotify.init(INIT_FLAGS)
        except (OSError, AttributeError) as exc:
            raise SensorUnavailableError(f"fanotify is unavailable: {exc}") from None
        self.roots, self.missing = [], []
        marked: set[int] = set()
        problems: list[str] = []
        for path in self.paths:
            real = os.path.realpath(path)
            if not os.path.isdir(real):
                self.missing.append(path)
                continue
            try:
                fsid = os.statvfs(real).f_fsid
                if fsid not in marked:
                    fanotify.mark(
                        self._fd,
                        fanotify.FAN_MARK_ADD | fanotify.FAN_MARK_FILESYSTEM,
                        EVENT_MASK,
                        real,
                    )
                    marked.add(fsid)
                    self._mounts[fsid] = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                problems.append(f"{path}: {exc.strerror or exc}")
                continue
            self.roots.append(real)
        if not self.roots:
            self._close()
            reason = "; ".join(problems) or "no watched path exists: " + ", ".join(self.missing)
            raise SensorUnavailableError(reason)
        self.missing += problems
        log.info("file sensor watching %s", ", ".join(self.roots))
        self._sink = sink
        self._run_thread(self._run, "sensor-file")

    def _stop(self) -> None:
        self._end_thread()
        self.flush(force=True)
        self._close()

    def _close(self) -> None:
        for fd in self._mounts.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._mounts.clear()
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def extra_status(self) -> dict[str, int]:
        return {"hash_pending": self.hashes.pending}

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while not self._stop_event.is_set():
            try:
                ready = poller.poll(250)
                buf = os.read(self._fd, fanotify.READ_SIZE) if ready else b""
            except BlockingIOError:
                buf = b""
            except OSError as exc:
                self.fail(f"reading fanotify: {exc.strerror or exc}")
                return
            for event in fanotify.parse_events(buf):
                try:
                    self.handle(event)
                except Exception:
                    log.exception("file sensor: handling %r crashed", event)
            self.flush()

    # -- events --------------------------------------------------------------------------------

    def handle(self, event: FanEvent, now: float | None = None) -> None:
        if event.overflow:
            self.counters.add("overflows")
            log.warning("fanotify queue overflow: the kernel dropped file events (counted)")
            return
        if event.pid == self._self_pid:
            return  # the agent's own spool and state files
        entry = event.dir_entry()
        if entry is None or not entry.name or entry.name == ".":
            return
        directory = self.resolve_dir(entry)
        if directory is None:
            self.unresolved += 1
            return
        path = os.path.join(directory, entry.name)
        if not watched(path, self.roots) or excluded(path, self.exclude):
            return
        key = (entry.fsid, entry.handle, entry.name)
        if event.mask & fanotify.FAN_CREATE:
            sink = self._sink
            if sink is None or not sink.allow(self):
                return
            when = time.time() if now is None else now
            creation = Creation(path, when, time.time_ns(), self.actor(event.pid))
            is_dir = bool(event.mask & fanotify.FAN_ONDIR)
            if is_dir or event.mask & fanotify.FAN_CLOSE_WRITE:
                self.report(creation, "ok")
                return
            try:
                st = os.lstat(path)
            except OSError:
                st = None
            if st is not None and not stat.S_ISREG(st.st_mode):
                self.report(creation, "ok")  # symlink, FIFO, device: nothing to wait for
                return
            self.pending[key] = creation
            while len(self.pending) > PENDING_MAX:
                _, oldest = self.pending.popitem(last=False)
                self.report(oldest, "still_open")
        elif event.mask & fanotify.FAN_CLOSE_WRITE:
            done = self.pending.pop(key, None)
            if done is not None:
                self.report(done, "ok")

    def flush(self, force: bool = False, now: float | None = None) -> None:
        """Report the creations still open after ``hash_wait`` (all of them at stop)."""
        now = time.time() if now is None else now
        while self.pending:
            key, creation = next(iter(self.pending.items()))
            if not force and now - creation.created < self.hash_wait:
                break
            del self.pending[key]
            self.report(creation, "still_open")

    def resolve_dir(self, fid: Fid) -> str | None:
        key = (fid.fsid, fid.handle)
        now = time.monotonic()
        cached = self._dirs.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        mount_fd = self._mounts.get(fid.fsid)
        if mount_fd is None:
            if len(self._mounts) != 1:
                return None
            mount_fd = next(iter(self._mounts.values()))
        path: str | None = None
        try:
            fd = fanotify.open_by_handle(mount_fd, fid.handle)
        except OSError as exc:
            if exc.errno not in (errno.ESTALE, errno.ENOENT):
                log.debug("open_by_handle_at: %s", exc)
        else:
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                path = None
            finally:
                os.close(fd)
        if path is not None and path.endswith(" (deleted)"):
            path = None
        self._dirs[key] = (path, now + DIR_TTL)
        self._dirs.move_to_end(key)
        while len(self._dirs) > DIR_CACHE:
            self._dirs.popitem(last=False)
        return path

    def actor(self, pid: int) -> dict[str, Any]:
        """The creating process, as /proc says at the create event."""
        out: dict[str, Any] = {}
        if pid <= 0:
            return out
        out["pid"] = pid
        st = procinfo.read_stat(pid)
        if st is not None:
            out["unique_pid"] = procinfo.unique_pid(pid, st.start_ticks)
        exe = procinfo.read_link(pid, "exe")
        if exe is not None:
            exe = exe.removesuffix(" (deleted)")
            out["process_name"] = exe.rsplit("/", 1)[-1]
            out["process_path"] = exe
            facts = self.hashes.facts(f"/proc/{pid}/exe")
            if facts is not None and facts.digests is not None:
                out["process_md5"] = facts.digests.md5
                out["process_sha256"] = facts.digests.sha256
        elif st is not None:
            out["process_name"] = st.comm
        ids = procinfo.read_ids(pid)
        if ids is not None:  # the account the creating process runs as
            out["user"] = procinfo.user_name(ids.uid)
            if ids.login_uid is not None:
                out["login_user"] = procinfo.user_name(ids.login_uid)
        return out

    def build(self, creation: Creation, hash_status: str) -> tuple[dict[str, Any], str]:
        """The event's data and id.  A file already gone (created and removed before it was
        closed) is still reported, by name, with ``unavailable = "file"``."""
        path = creation.path
        data: dict[str, Any] = {"time": creation.created, "host": self._host, "os": self._os}
        data.update(creation.actor)
        data["file_name"] = path.rsplit("/", 1)[-1]
        data["file_path"] = path
        data["full_name"] = path
        # The birth time where the filesystem records it, else when the sensor saw it.
        data["created_at"] = creation.created
        try:
            st = os.lstat(path)
        except OSError:
            data["unavailable"] = "file"
            return data, event_id(path, 0, 0, creation.created_ns)
        born = statx.birth_time(path)
        if born is not None:
            data["created_at"] = born
        kind = file_type(st.st_mode)
        data["file_type"] = kind
        data["size"] = st.st_size
        data["modified_at"] = st.st_mtime
        data["file_owner"] = procinfo.user_name(st.st_uid)
        data["file_group"] = procinfo.group_name(st.st_gid)
        data["file_permissions"] = f"{stat.S_IMODE(st.st_mode):04o}"
        data["owner_uid"] = st.st_uid
        data["owner_gid"] = st.st_gid
        if kind == "file":
            if hash_status == "ok":
                facts = self.hashes.facts(path)
                if facts is not None:
                    hash_status = facts.status
                    if facts.digests is not None:
                        data["md5"] = facts.digests.md5
                        data["sha256"] = facts.digests.sha256
                else:
                    hash_status = "unreadable"
            data["hash_status"] = hash_status
        return data, event_id(path, st.st_dev, st.st_ino, creation.created_ns)

    def report(self, creation: Creation, hash_status: str) -> None:
        sink = self._sink
        if sink is None:
            return
        data, eid = self.build(creation, hash_status)
        sink.submit(self, "file_created", data, eid, creation.created)
