"""Consumers of the event log, each with its own persisted cursor.

A consumer handles a batch and advances its cursor in one transaction, with its cursor row
locked: a restart resumes where it stopped, an event is only ever delivered after it was
committed, and with several nodes on PostgreSQL one node at a time processes a consumer's
batch (the others wait on the row lock, then see the advanced cursor).  Side effects a
consumer writes to the database commit with the cursor, so they happen exactly once;
side effects outside the database (an exporter's network send) are at-least-once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from garrison.server.events import service as events
from garrison.server.events.models import ConsumerCursor, Event
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database
from garrison.server.store.upsert import insert_ignore

log = structlog.get_logger("garrison.events")


class Consumer(Protocol):
    name: str
    batch_size: int

    def wanted_types(self, session: Session) -> frozenset[str] | None:
        """The event types this consumer acts on now; None for all of them.  The others are
        passed over without being read."""

    def handle(self, session: Session, batch: Sequence[Event]) -> None:
        """Process events in order; raising rolls back the batch (it is retried)."""


def ensure_cursor(session: Session, name: str, start_at_end: bool = False) -> None:
    position = events.last_position(session) if start_at_end else 0
    insert_ignore(
        session,
        ConsumerCursor.__table__,  # type: ignore[arg-type]
        {"name": name, "position": position, "updated_at": utcnow()},
    )


def position(session: Session, name: str) -> int:
    return int(
        session.scalar(select(ConsumerCursor.position).where(ConsumerCursor.name == name)) or 0
    )


def run_batch(db: Database, consumer: Consumer) -> int:
    """Process one batch; returns how many events it held (0 when the consumer is at the
    end of the log)."""
    with db.transaction() as session:
        current = session.scalar(
            select(ConsumerCursor.position)
            .where(ConsumerCursor.name == consumer.name)
            .with_for_update()
        )
        if current is None:
            ensure_cursor(session, consumer.name)
            current = 0
        wanted = consumer.wanted_types(session)
        if wanted is None:
            batch = events.read_after(session, int(current), consumer.batch_size)
            if not batch:
                return 0
            consumer.handle(session, batch)
            new_position, held = batch[-1].seq, len(batch)
        else:
            # Read the end first: appends commit in position order (see events.service), so
            # every event up to it is visible to the filtered read that follows.
            end = events.last_position(session)
            if end <= current:
                return 0
            batch = events.read_after(session, int(current), consumer.batch_size, wanted, end)
            if batch:
                consumer.handle(session, batch)
            full = len(batch) == consumer.batch_size
            new_position = batch[-1].seq if full else end
            held = len(batch) if full else 0
        session.execute(
            update(ConsumerCursor)
            .where(ConsumerCursor.name == consumer.name)
            .values(position=new_position, updated_at=utcnow())
        )
        return held


class ConsumerRunner:
    """One thread per consumer; woken when this node appends events, polling otherwise (for
    events other nodes append)."""

    def __init__(self, db: Database, poll_seconds: float = 1.0) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self._consumers: list[Consumer] = []
        self._wake: list[threading.Event] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def add(self, consumer: Consumer) -> None:
        self._consumers.append(consumer)
        self._wake.append(threading.Event())

    def wake(self) -> None:
        for flag in self._wake:
            flag.set()

    def start(self) -> None:
        for consumer, flag in zip(self._consumers, self._wake, strict=True):
            thread = threading.Thread(
                target=self._loop,
                args=(consumer, flag),
                name=f"consumer-{consumer.name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _loop(self, consumer: Consumer, flag: threading.Event) -> None:
        backoff = self.poll_seconds
        while not self._stop.is_set():
            try:
                handled = run_batch(self.db, consumer)
                backoff = self.poll_seconds
            except Exception:
                log.exception("consumer batch failed; will retry", consumer=consumer.name)
                handled = 0
                backoff = min(backoff * 2, 30.0)
                time.sleep(min(backoff, 1.0))
            if handled == 0:
                flag.wait(backoff)
                flag.clear()
