"""Which stations have jobs waiting, and agents waiting for one (long-poll).

A job committed on this node wakes its stations' long-polls at once (``queued``, the
``JOBS_QUEUED`` after-commit signal).  For the others, one watcher per node reads the job
targets created since it last looked (a cheap indexed query, every ``interval`` seconds, and
at once after a local job too, for a long-poll that began waiting just after the wake),
wakes the long-polls of the stations concerned, and keeps the set of stations with queued
jobs.  That
set lets a check-in that finds nothing be answered without touching the database: a station
is only left out of it after a database read found it had nothing queued, and a job created
anywhere puts it back (at once on this node, within one interval from another node; the set
is also reloaded every ``reload_seconds`` as a safety net).

Between the worker processes of one node "within one interval" is not good enough (an
operator creates a job, the agent asks at once and lands on the sibling worker): a job
committed in one worker also moves a counter the node's workers share
(:class:`~garrison.server.siblings.SiblingCounter`).  While the counter differs from the
value seen at this worker's last read of the database, every check-in here takes the full
path, and the watcher, which looks at the counter every ``SIBLING_TICK``, reads the new
targets and wakes their long-polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Iterable

import structlog
from sqlalchemy import func, select

from garrison.server.jobs.models import JobTarget
from garrison.server.siblings import SiblingCounter
from garrison.server.store.engine import Database

log = structlog.get_logger("garrison.jobs")

# How often the watcher looks at the sibling workers' counter (a memory read).
SIBLING_TICK = 0.05


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


class JobWaiters:
    def __init__(
        self,
        db: Database,
        interval: float = 0.5,
        reload_seconds: float = 30.0,
        siblings: SiblingCounter | None = None,
    ) -> None:
        self.db = db
        self.siblings = siblings
        # The siblings' counter as it was just before this worker's last read of new targets
        # (until the first load every check-in takes the full path anyway).
        self._siblings_seen = siblings.read() if siblings is not None else -1
        self.interval = interval
        self.reload_seconds = reload_seconds
        self._waiting: dict[int, set[asyncio.Future[bool]]] = defaultdict(set)
        self._last_job_id = 0  # read with the first load
        self._poke: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        # Until the first load everyone takes the slow path; marks made meanwhile are kept,
        # since the load's read may have begun before their job committed.
        self._queued: set[int] = set()
        self._loaded = False
        self._versions: dict[int, int] = defaultdict(int)
        self._loaded_at = 0.0
        self.closing = False

    # -- the queued-stations set (any thread) ----------------------------------------------

    def may_have_jobs(self, station_id: int) -> bool:
        with self._lock:
            if not self._loaded or station_id in self._queued:
                return True
        return self._siblings_moved()

    def _siblings_moved(self) -> bool:
        """A sibling worker committed a job since this worker last read the new targets."""
        return self.siblings is not None and self.siblings.read() != self._siblings_seen

    def version(self, station_id: int) -> int:
        with self._lock:
            return self._versions[station_id]

    def mark_queued(self, station_ids: Iterable[int]) -> None:
        with self._lock:
            for sid in station_ids:
                self._versions[sid] += 1
                self._queued.add(sid)

    def nothing_queued(self, station_id: int, seen_version: int) -> None:
        """A read found nothing queued; unless a job came since that read began."""
        with self._lock:
            if self._versions[station_id] == seen_version:
                self._queued.discard(station_id)

    def _reload(self) -> set[int]:
        """Load the queued-stations set; returns, on the first load, the stations with queued
        jobs (a long-poll that began before the load may be waiting for one of them: the
        watcher's later reads start after the newest job read here, so they would miss it)."""
        with self.db.reading() as session:
            # The newest job first: one committed after this read has a larger id and the
            # watcher's next read finds it; one committed before is in the set read next.
            last_job_id = int(session.scalar(select(func.max(JobTarget.job_id))) or 0)
            stations = set(
                session.scalars(
                    select(JobTarget.station_id).where(JobTarget.status == "queued").distinct()
                )
            )
        with self._lock:
            # Stations marked while we read stay marked.
            self._queued |= stations
            first = not self._loaded
            if first:
                self._last_job_id = last_job_id
                self._loaded = True
        self._loaded_at = time.monotonic()
        return stations if first else set()

    # -- long-poll (event loop) ----------------------------------------------------------

    def close(self) -> None:
        """Shutting down: every waiting agent gets its (empty) answer now."""
        self.closing = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for futures in list(self._waiting.values()):
            for future in list(futures):
                _settle(future, False)

    def waiting_count(self) -> int:
        return sum(len(v) for v in self._waiting.values())

    async def wait(self, station_id: int, timeout: float) -> bool:
        """True when woken for a new job, False on timeout.  A bare future and one timer per
        poll: cheap enough for tens of thousands of held polls."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_later(timeout, _settle, future, False)
        self._waiting[station_id].add(future)
        try:
            return await future
        finally:
            timer.cancel()
            futures = self._waiting.get(station_id)
            if futures is not None:
                futures.discard(future)
                if not futures:
                    self._waiting.pop(station_id, None)

    def queued(self, station_ids: Iterable[int]) -> None:
        """Jobs were committed for these stations on this node: their long-polls answer at
        once (the JOBS_QUEUED after-commit signal).  Woken here rather than only by the
        watcher's read, which, when it is its first load, takes the new job for an old one."""
        stations = frozenset(station_ids)
        self.mark_queued(stations)
        if self.siblings is not None:
            # Before the request that created the job answers: a check-in that follows it on
            # a sibling worker must find the counter moved.
            self.siblings.bump()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake, stations)
        self.poke()

    def _wake(self, station_ids: Iterable[int]) -> None:
        for station_id in station_ids:
            for future in list(self._waiting.get(station_id, ())):
                _settle(future, True)

    def poke(self) -> None:
        """A job was just created on this node (called from any thread)."""
        if self._loop is not None and self._poke is not None:
            self._loop.call_soon_threadsafe(self._poke.set)

    def _new_targets(self) -> list[int]:
        # Read before the database: a job committed after this read moves the counter again.
        seen = self.siblings.read() if self.siblings is not None else -1
        loaded: set[int] = set()
        if not self._loaded or time.monotonic() - self._loaded_at > self.reload_seconds:
            loaded = self._reload()
        with self.db.reading() as session:
            rows = session.execute(
                select(JobTarget.job_id, JobTarget.station_id).where(
                    JobTarget.job_id > self._last_job_id, JobTarget.status == "queued"
                )
            ).all()
        if rows:
            self._last_job_id = max(job_id for job_id, _ in rows)
        stations = [station_id for _, station_id in rows]
        self.mark_queued(stations)
        self._siblings_seen = seen
        return [*stations, *loaded]

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._poke = asyncio.Event()
        tick = min(self.interval, SIBLING_TICK) if self.siblings is not None else self.interval
        last_read = time.monotonic()  # the first read after one interval, as before the tick
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), tick)
            poked = self._poke.is_set()
            self._poke.clear()
            due = time.monotonic() - last_read >= self.interval
            if not (poked or due or self._siblings_moved()):
                continue
            last_read = time.monotonic()
            try:
                stations = await asyncio.to_thread(self._new_targets)
            except Exception:
                log.exception("could not read new jobs; will retry")
                continue
            self._wake(stations)
