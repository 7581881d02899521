"""Long-poll support: agents waiting for a job are woken when one is queued for them.

One watcher per node reads the job targets created since it last looked (a cheap indexed
query, every ``interval`` seconds, or at once when this node creates a job) and wakes only
the stations concerned.  Jobs created on another node are seen within one interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import structlog
from sqlalchemy import func, select

from garrison.server.jobs.models import JobTarget
from garrison.server.store.engine import Database

log = structlog.get_logger("garrison.jobs")


class JobWaiters:
    def __init__(self, db: Database, interval: float = 0.5) -> None:
        self.db = db
        self.interval = interval
        self._waiting: dict[int, set[asyncio.Event]] = defaultdict(set)
        self._last_job_id: int | None = None
        self._poke: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    closing = False

    def close(self) -> None:
        """Shutting down: every waiting agent gets its (empty) answer now."""
        self.closing = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for flags in self._waiting.values():
            for flag in flags:
                flag.set()

    def waiting_count(self) -> int:
        return sum(len(v) for v in self._waiting.values())

    async def wait(self, station_id: int, timeout: float) -> bool:
        """True when woken for a new job, False on timeout."""
        flag = asyncio.Event()
        self._waiting[station_id].add(flag)
        try:
            await asyncio.wait_for(flag.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiting.get(station_id)
            if waiters is not None:
                waiters.discard(flag)
                if not waiters:
                    self._waiting.pop(station_id, None)

    def poke(self) -> None:
        """A job was just created on this node (called from any thread)."""
        if self._loop is not None and self._poke is not None:
            self._loop.call_soon_threadsafe(self._poke.set)

    def _new_targets(self) -> list[int]:
        with self.db.reading() as session:
            if self._last_job_id is None:
                self._last_job_id = int(session.scalar(select(func.max(JobTarget.job_id))) or 0)
                return []
            rows = session.execute(
                select(JobTarget.job_id, JobTarget.station_id).where(
                    JobTarget.job_id > self._last_job_id, JobTarget.status == "queued"
                )
            ).all()
        if rows:
            self._last_job_id = max(job_id for job_id, _ in rows)
        return [station_id for _, station_id in rows]

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._poke = asyncio.Event()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.interval)
            self._poke.clear()
            try:
                stations = await asyncio.to_thread(self._new_targets)
            except Exception:
                log.exception("could not read new jobs; will retry")
                continue
            for station_id in stations:
                for flag in self._waiting.get(station_id, ()):
                    flag.set()
