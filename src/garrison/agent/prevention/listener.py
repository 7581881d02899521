"""The permission listener: one fanotify group, and three kinds of threads that make sure
every permission event is answered, in time, whatever happens.

- The **reader** reads events and answers what needs no file content at once: the agent's
  own opens and execs (its pid: the agent must never wait on itself), opens outside the
  watched paths, and every file whose verdict is cached.  It never opens a file, never
  logs and never waits on a lock another thread holds for long: the agent's own opens
  are answered by it, so a reader blocked on a marked file would freeze the agent.
- **Workers** decide the rest (hash, block list, scan) from the event's descriptor and
  answer, unless the watchdog has already.
- The **watchdog** answers ``allow`` for every event still pending at its deadline (fail
  open, counted) and, should the reader stop looping, closes the group: the kernel then
  allows every event still queued, and the listener reports itself failed.

Whoever answers an event first wins (one ``pop`` under a lock); the descriptor is closed
by the thread that owns it (the reader, or the worker it handed it to), never by the
watchdog, so a descriptor number is never reused while someone still reads it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import select
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from garrison.agent.prevention import fanperm, protect, scope
from garrison.agent.prevention.decide import ALLOW, Decider, Verdict, VerdictCache
from garrison.agent.scan.signatures import SignatureDB
from garrison.agent.sensors.hashes import file_key

log = logging.getLogger("garrison.agent.prevention")

READ_SIZE = 64 * 1024
POLL_MS = 100
QUEUE = 256
# Exec decisions that need only a hash are made by the reader up to this size.
INLINE_MAX = 2 * 1024 * 1024
# The reader is stalled when it has not looped for this long (it polls every 100 ms).
STALL_SECONDS = 2.0


@dataclass(frozen=True)
class Decision:
    """What a deny or a detection hands to the reporter (off the answering path)."""

    kind: str  # exec | open | write
    path: str
    pid: int
    verdict: Verdict
    size: int
    mtime: float
    uid: int
    gid: int
    mode: int
    cached: bool = False


@dataclass
class _Job:
    kind: str
    fd: int
    pid: int
    path: str
    st: os.stat_result
    scan: bool
    db: SignatureDB


class Listener:
    def __init__(
        self,
        decider: Decider,
        db: SignatureDB,
        *,
        exec_paths: list[str],
        watch_paths: list[str],
        scan: bool,
        deadline: float,
        verdict_cache: int,
        on_decision: Callable[[Decision], None],
        on_fail_open: Callable[[str], None] = lambda why: None,
        workers: int = 2,
    ) -> None:
        self.decider = decider
        self.db = db  # replaced in one assignment when new content is in force
        self.exec_paths = exec_paths
        self.watch_paths = watch_paths
        self.scan = scan
        self.deadline = max(deadline, 0.001)
        self.cache = VerdictCache(verdict_cache)
        self.on_decision = on_decision
        self.on_fail_open = on_fail_open
        self.workers = max(workers, 1)
        self.counters: Counter[str] = Counter()
        # Four threads count; ``Counter[k] += 1`` is a read and a write, not one step.
        self._counters_lock = threading.Lock()
        self.marked: list[str] = []
        self.state = "stopped"
        self.reason = ""
        self._pid = os.getpid()
        self._group = -1
        self._group_lock = threading.Lock()
        self._pending: dict[int, float] = {}
        self._pending_lock = threading.Lock()
        self._jobs: queue.Queue[_Job | None] = queue.Queue(QUEUE)
        self._reports: queue.Queue[Decision | None] = queue.Queue(QUEUE)
        self._stop = threading.Event()
        self._beat = time.monotonic()
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Make the group and its marks; raises OSError (not root, old kernel) with nothing
        left marked."""
        # What the reader may need, read now: it must never open a file once marks exist
        # (an open of its own on an open-marked mount would wait for itself).
        protect.protected()
        group = fanperm.init()
        try:
            marks: dict[str, int] = {}
            for path in self.exec_paths:
                marks[path] = marks.get(path, 0) | fanperm.FAN_OPEN_EXEC_PERM
            for path in self.watch_paths:
                marks[path] = marks.get(path, 0) | fanperm.FAN_OPEN_PERM | fanperm.FAN_CLOSE_WRITE
            for path, mask in marks.items():
                fanperm.mark(group, fanperm.FAN_MARK_ADD | fanperm.FAN_MARK_MOUNT, mask, path)
        except OSError:
            os.close(group)
            raise
        self._group = group
        self.marked = sorted(marks)
        self.state, self.reason = "running", ""
        self._beat = time.monotonic()
        self._thread(self._read, "prevention-reader")
        for n in range(self.workers):
            self._thread(self._work, f"prevention-worker-{n}")
        self._thread(self._watch, "prevention-watchdog")
        self._thread(self._report, "prevention-reporter")

    def _thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._close_group()  # the kernel allows whatever is still pending
        for _ in range(self.workers):
            with contextlib.suppress(queue.Full):
                self._jobs.put_nowait(None)
        with contextlib.suppress(queue.Full):
            self._reports.put_nowait(None)
        for thread in self._threads:
            thread.join(5)
        self._threads = []
        if self.state == "running":
            self.state = "stopped"

    def _close_group(self) -> None:
        with self._group_lock:
            group, self._group = self._group, -1
        if group >= 0:
            os.close(group)
        with self._pending_lock:
            self._pending.clear()

    def fail(self, reason: str) -> None:
        self.state, self.reason = "failed", reason
        self._stop.set()
        self._close_group()

    # -- answering ---------------------------------------------------------------------------

    def _write(self, fd: int, allow: bool) -> None:
        # Counted before the answer and taken back if it fails: the answer releases the
        # process that waits on it, which may read the counters at once.
        outcome = "allowed" if allow else "denied"
        with self._group_lock:
            if self._group < 0:
                return  # closed: the kernel has allowed it
            self._count(outcome)
            try:
                fanperm.answer(self._group, fd, allow)
            except OSError:
                self._count(outcome, -1)
                self._count("answer_errors")

    def _count(self, name: str, n: int = 1) -> None:
        with self._counters_lock:
            self.counters[name] += n

    def _answer_pending(self, fd: int, allow: bool, why: str | None = None) -> bool:
        """Answer ``fd`` unless someone already has; ``why`` is counted first if it does."""
        with self._pending_lock:
            if self._pending.pop(fd, None) is None:
                return False
        if why is not None:
            self._count(why)
        self._write(fd, allow)
        return True

    # -- the reader --------------------------------------------------------------------------

    def _read(self) -> None:
        try:
            poller = select.poll()
            poller.register(self._group, select.POLLIN)
            while not self._stop.is_set():
                self._beat = time.monotonic()
                if not poller.poll(POLL_MS):
                    continue
                try:
                    buf = os.read(self._group, READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno in (errno.EINTR, errno.EAGAIN):
                        continue
                    raise
                for event in fanperm.parse(buf):
                    self._event(event)
        except Exception as exc:
            if not self._stop.is_set():
                log.exception("the prevention reader crashed; failing open")
                self.fail(f"reader crashed: {type(exc).__name__}")

    def _event(self, event: fanperm.PermEvent) -> None:
        fd = event.fd
        if fd < 0:
            self._count("overflows")
            return
        owned = True  # the reader closes fd unless a worker took it
        try:
            if event.pid == self._pid:
                # Counted before the answer: the answer releases the opener, which may read
                # the counters at once (the test of this path did, and raced the increment).
                self._count("own")
                if event.permission:
                    self._write(fd, True)
                return
            if event.permission:
                owned = self._permission(event)
            elif self.scan:
                owned = self._after_write(event)
        finally:
            if owned:
                os.close(fd)

    def _path(self, fd: int) -> str:
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return ""

    def _permission(self, event: fanperm.PermEvent) -> bool:
        """True when the reader keeps (and closes) the descriptor."""
        fd = event.fd
        execs = bool(event.mask & fanperm.FAN_OPEN_EXEC_PERM)
        db = self.db
        path = self._path(fd)
        in_watch = self.scan and scope.watched(path, self.watch_paths)
        blocking = execs or scope.watched(path, self.watch_paths)
        if not in_watch and (db.blocklist.empty or not blocking):
            self._write(fd, True)  # nothing to decide here (an open elsewhere on the mount)
            return True
        try:
            st = os.fstat(fd)
        except OSError:
            self._write(fd, True)
            return True
        if not stat.S_ISREG(st.st_mode):
            self._write(fd, True)
            return True
        self._count("decisions")
        cached = self.cache.get(db, file_key(st), in_watch)
        kind = "exec" if execs else "open"
        if cached is not None:
            self._count("cached")
            self._write(fd, cached.allow)
            if not cached.allow:
                self._queue_report(Decision(kind, path, event.pid, cached, *_facts(st), True))
            return True
        job = _Job(kind, fd, event.pid, path, st, in_watch, db)
        if not in_watch and st.st_size <= INLINE_MAX:
            # A hash and a lookup, from the descriptor (reading it raises no event): cheaper
            # here than the hand-off to a worker, and short enough not to hold the agent's
            # own accesses behind it (about 0.7 ms per MiB with SHA-NI).
            self._decide(job, inline=True)
            return True
        with self._pending_lock:
            self._pending[fd] = time.monotonic() + self.deadline
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self._answer_pending(fd, True, "fail_open_queue")
            self.on_fail_open("queue")
            return True
        return False

    def _after_write(self, event: fanperm.PermEvent) -> bool:
        if not event.mask & fanperm.FAN_CLOSE_WRITE:
            return True
        path = self._path(event.fd)
        if not scope.watched(path, self.watch_paths):
            return True
        try:
            st = os.fstat(event.fd)
        except OSError:
            return True
        if not stat.S_ISREG(st.st_mode):
            return True
        try:
            self._jobs.put_nowait(_Job("write", event.fd, event.pid, path, st, True, self.db))
        except queue.Full:
            self._count("scans_dropped")
            return True
        return False

    def _queue_report(self, decision: Decision) -> None:
        try:
            self._reports.put_nowait(decision)
        except queue.Full:
            self._count("reports_dropped")

    # -- workers -----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._decide(job)
            except Exception:
                log.exception("a prevention decision crashed; allowed")
                self._answer_pending(job.fd, True)
            finally:
                os.close(job.fd)

    def _decide(self, job: _Job, inline: bool = False) -> None:
        key = file_key(job.st)
        if job.kind == "write":
            self._count("scans_after_write")
        verdict = self.decider.decide(job.db, job.fd, key, job.st.st_size, job.path, job.scan)
        if not verdict.note:
            self.cache.put(job.db, key, job.scan, verdict)
        if verdict.note:
            self._count(verdict.note)
        if inline:
            self._write(job.fd, verdict.allow)
        elif job.kind != "write" and not self._answer_pending(job.fd, verdict.allow):
            self._count("late")  # the watchdog allowed it at the deadline
        if not verdict.allow:
            self._queue_report(Decision(job.kind, job.path, job.pid, verdict, *_facts(job.st)))

    # -- the watchdog ------------------------------------------------------------------------

    def _watch(self) -> None:
        period = min(0.05, self.deadline / 4)
        while not self._stop.wait(period):
            now = time.monotonic()
            with self._pending_lock:
                late = [fd for fd, due in self._pending.items() if due <= now]
            for fd in late:
                if self._answer_pending(fd, True, "fail_open_deadline"):
                    self.on_fail_open("deadline")
            if now - self._beat > max(STALL_SECONDS, 4 * self.deadline):
                log.error("the prevention reader stalled; closing the group (fail open)")
                self.fail("the reader stalled: every pending event was allowed")
                return

    # -- the reporter ------------------------------------------------------------------------

    def _report(self) -> None:
        while True:
            decision = self._reports.get()
            if decision is None:
                return
            try:
                self.on_decision(decision)
            except Exception:
                log.exception("reporting a prevention decision crashed")

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, int]:
        with self._counters_lock:
            out = dict(self.counters)
        out["yara_timeouts"] = self.decider.yara_timeouts
        out["fail_open"] = out.get("fail_open_deadline", 0) + out.get("fail_open_queue", 0)
        out["cached_verdicts"] = len(self.cache)
        with self._pending_lock:
            out["pending"] = len(self._pending)
        return out


def _facts(st: os.stat_result) -> tuple[int, float, int, int, int]:
    return st.st_size, st.st_mtime, st.st_uid, st.st_gid, st.st_mode


__all__ = ["ALLOW", "Decision", "Listener"]
