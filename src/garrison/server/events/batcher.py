"""Group commit for ``POST /api/events``: the requests that arrive while a batch is being
written go together in the next transaction, one writer thread per process.

Each request in its own transaction meant, at 1,000 telemetry batches a second, 1,000
commits (each a WAL sync on SQLite) fought over by every worker thread of every process:
SQLite has one writer, and the threads waiting for its lock held their admission slots until
the node refused everything else (bench/findings.md, issue 20).  Here a request waits on the
event loop, not in a thread, and one transaction carries many requests' events.  Each
request runs in a savepoint, so one request refused (its station gone) does not undo the
others; a failed commit fails every request of the batch (none was acknowledged).

Waiting events are bounded (``max_pending_events``): past it a request is refused at once
with ``503 overloaded`` and ``Retry-After``, and the agent keeps its events in its spool.
They are bounded in time too (``max_wait_seconds``): a request is refused when the events
ahead of it would take longer than that to write at the rate the writer has been storing
them.  A count alone let the queue grow to 26 s of writing on SQLite at 100,000 agents:
requests waited past their client's 30 s timeout, and each held its connection (a
descriptor on both sides) all along, until the agents' side ran out of descriptors and
check-ins failed to connect (bench/findings.md, issue 20, "the cause found").
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from garrison.server.errors import GarrisonError, OverloadedError
from garrison.server.events.reports import EventsIngested, ingest_in
from garrison.server.settings import EVENTS_MAX_PENDING, EVENTS_MAX_WAIT_SECONDS
from garrison.server.stations.credentials import AgentCredential
from garrison.server.store.engine import Database

# As the admission's (garrison.server.admission, an edge this slice does not import).
RETRY_AFTER_SECONDS = 2
# Weight of the latest batch in the writer's measured rate (events per second).
RATE_WEIGHT = 0.3


@dataclass
class _Request:
    credential: AgentCredential
    address: str
    items: list[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[EventsIngested]


class IngestBatcher:
    def __init__(
        self,
        db: Database,
        max_pending_events: int = EVENTS_MAX_PENDING,
        max_wait_seconds: float = EVENTS_MAX_WAIT_SECONDS,
    ) -> None:
        self.db = db
        self.max_pending_events = max_pending_events
        self.max_wait_seconds = max_wait_seconds
        self._lock = threading.Lock()
        self._pending: list[_Request] = []
        self._pending_events = 0
        self._in_flight_events = 0  # the batch being written
        self._writing = False
        # Events per second the writer stored, smoothed over its batches; None until a
        # batch was written (nothing to estimate a wait from yet).
        self.rate: float | None = None
        self.batches = 0  # transactions written (for tests and profiles)
        self.refused = 0

    async def ingest(
        self, credential: AgentCredential, address: str, items: list[Any]
    ) -> EventsIngested:
        loop = asyncio.get_running_loop()
        request = _Request(credential, address, items, loop, loop.create_future())
        with self._lock:
            if self._pending and (
                self._pending_events + len(items) > self.max_pending_events
                or self._expected_wait(len(items)) > self.max_wait_seconds
            ):
                self.refused += 1
                raise OverloadedError(
                    "the server is busy storing events; try again later",
                    retry_after=RETRY_AFTER_SECONDS,
                )
            self._pending.append(request)
            self._pending_events += len(items)
            start = not self._writing
            self._writing = True
        if start:
            threading.Thread(target=self._drain, name="events-writer", daemon=True).start()
        return await request.future

    def _expected_wait(self, more: int) -> float:
        """Seconds until ``more`` events queued now would be written (under the lock)."""
        if not self.rate:
            return 0.0
        return (self._in_flight_events + self._pending_events + more) / self.rate

    def _drain(self) -> None:
        """Write batches until none is waiting; the thread ends with the queue empty (a
        request that comes after the last look starts the next thread)."""
        while True:
            with self._lock:
                batch, self._pending = self._pending, []
                self._in_flight_events, self._pending_events = self._pending_events, 0
                if not batch:
                    self._writing = False
                    return
            self._write(batch)

    def _measured(self, events: int, seconds: float) -> None:
        with self._lock:
            self._in_flight_events = 0
            if events <= 0 or seconds <= 0:
                return
            latest = events / seconds
            previous = self.rate
            self.rate = (
                latest if previous is None else RATE_WEIGHT * latest + (1 - RATE_WEIGHT) * previous
            )

    def _write(self, batch: list[_Request]) -> None:
        outcomes: list[EventsIngested | BaseException] = []
        started = time.monotonic()
        try:
            with self.db.transaction() as session:
                for request in batch:
                    try:
                        with session.begin_nested():
                            outcomes.append(
                                ingest_in(
                                    session, request.credential, request.address, request.items
                                )
                            )
                    except GarrisonError as exc:  # this request's own refusal (its savepoint)
                        outcomes.append(exc)
            # Anything else (the database gone, a driver error) fails the whole batch below,
            # through the transaction's own reporting: an unreachable database is answered
            # 503 database_unavailable to every request of the batch, never a 500.
            self.batches += 1
        except Exception as exc:  # the commit failed: nothing of the batch was stored
            outcomes = [exc] * len(batch)
        # Before the answers go out: a request that follows one of them sees this batch's
        # rate, and nothing in flight.
        self._measured(sum(len(r.items) for r in batch), time.monotonic() - started)
        for request, outcome in zip(batch, outcomes, strict=True):
            request.loop.call_soon_threadsafe(_settle, request.future, outcome)


def _settle(
    future: asyncio.Future[EventsIngested], outcome: EventsIngested | BaseException
) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
