"""The runtime of every consumer of the event log (procedures, each export target).

Each consumer reads the log through a persisted cursor, in batches, the types it does not
want passed over without being read; a restart resumes where it stopped and an event is only
ever delivered after it was committed.  Two ways to handle a batch, chosen per consumer:

- **in the transaction** (the default): the batch is handled and the cursor advanced in one
  transaction, with the cursor row locked (SELECT … FOR UPDATE).  What the consumer writes to
  the database commits with the new position: exactly once.  With several nodes on
  PostgreSQL, the others wait on the row lock, then see the advanced cursor.
- **outside the transaction** (``outside_transaction``): the batch is read in a short read-only
  transaction, where the consumer prepares its work; the work (a network send) runs once that
  transaction has ended, and the cursor then advances past what it reports done.  Nothing
  holds a transaction open while a SIEM is slow.  At-least-once: a crash between the send and
  the advance sends again.  With several nodes on PostgreSQL, an advisory lock held without
  a transaction (:func:`garrison.server.store.locks.exclusive`) lets one node at a time feed
  the consumer; the others find it taken and poll.
- **outside the transaction, checkpointed** (a :class:`CheckpointedSend`): as above, but
  the send advances the cursor itself (:class:`Checkpoint`), past what it handled, inside
  the short transaction that writes what those events did (the procedures: what the
  procedures of a batch asked for is applied after they ran, with no transaction open
  while they ran).  Exactly once again: the writes commit with the cursor moving past their
  events, and a crash before that runs those events again.

One thread per consumer, woken when this node appends events and polling otherwise (for
events other nodes append); a failing batch is retried with exponential backoff.  Consumers
can be added and removed while the runner runs (export targets change at run time).
"""

from __future__ import annotations

import datetime as dt
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from garrison.server.events import service as events
from garrison.server.events.models import ConsumerCursor, Event
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database
from garrison.server.store.locks import exclusive
from garrison.server.store.upsert import insert_ignore

log = structlog.get_logger("garrison.events")
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0


@dataclass(frozen=True)
class Progress:
    """What became of a batch: its first ``done`` events are handled and the cursor moves
    past them; with ``error``, the rest failed and is retried after a backoff."""

    done: int
    error: str | None = None


# The work an outside-the-transaction consumer does once its batch's transaction has ended.
Send = Callable[[], Progress]


class BatchIncompleteError(Exception):
    """A consumer reported part of its batch failed (what was done is recorded)."""


class CursorMovedError(Exception):
    """The cursor is not where this batch left it: another node moved it meanwhile."""


class Checkpoint:
    """The cursor of a :class:`CheckpointedSend`'s consumer, as its send moves it."""

    def __init__(self, name: str, position: int) -> None:
        self.name = name
        self.position = position

    def advance(self, session: Session, seq: int) -> None:
        """Move the cursor past ``seq`` in ``session``, the transaction that writes what
        the event did.  Raises CursorMovedError (the caller's transaction then rolls back,
        writes and all) when someone else moved it."""
        if seq <= self.position:
            return
        moved = session.execute(
            update(ConsumerCursor)
            .where(ConsumerCursor.name == self.name, ConsumerCursor.position == self.position)
            .values(position=seq, updated_at=utcnow())
        ).rowcount  # type: ignore[attr-defined]
        if moved != 1:
            raise CursorMovedError(f"the cursor of {self.name!r} moved meanwhile")
        self.position = seq


class CheckpointedSend(ABC):
    """The work of an outside-the-transaction consumer that advances its cursor itself,
    event by event (see the module docstring).  ``run`` returns how much of the batch is
    handled; the runtime then moves the cursor from where the send left it past the rest
    that was handled (events the consumer did not want)."""

    @abstractmethod
    def run(self, checkpoint: Checkpoint) -> Progress: ...


class Consumer:
    """A consumer of the event log.  Subclass it, name it (its cursor's name) and override
    :meth:`handle`; the other methods have defaults."""

    name: str
    batch_size: int = 100
    # See the module docstring.  True: handle() runs in a read-only transaction and returns
    # the Send to run after it (or a Progress when there is nothing to send).
    outside_transaction: bool = False
    # False: the cursor is made with what the consumer belongs to (an export target) and goes
    # with it: a missing cursor means there is nothing to do, not "start from the beginning".
    create_cursor: bool = True
    # Past this many events behind the log's end, the oldest are dropped (0: never).
    max_backlog: int = 0
    # How long to wait for a wake-up before looking at the log again when idle.
    poll_seconds: float = 1.0

    def wanted_types(self, session: Session) -> frozenset[str] | None:
        """The event types this consumer acts on now; None for all of them.  The others are
        passed over without being read."""
        return None

    def handle(
        self, session: Session, batch: Sequence[Event]
    ) -> Progress | Send | CheckpointedSend | None:
        """Process events in order.  None: all of them (as ``Progress(len(batch))``); less
        than all: the rest is read again next time.  Raising rolls back the batch (it is
        retried)."""
        raise NotImplementedError

    def measured(self, behind: int, dropped: int) -> None:
        """Each batch: how many events the cursor is behind the log's end, and how many were
        just dropped past ``max_backlog``."""

    def idle(self) -> None:
        """Called when there was nothing to do, before waiting (a heartbeat, say)."""

    def failed(self) -> None:
        """Called when a batch failed, before the backoff (drop a broken connection, say)."""

    def close(self) -> None:
        """Called once the consumer's thread has stopped."""


def ensure_cursor(session: Session, name: str, start_at_end: bool = False) -> None:
    position = events.last_position(session) if start_at_end else 0
    insert_ignore(
        session,
        ConsumerCursor.__table__,  # type: ignore[arg-type]
        {"name": name, "position": position, "updated_at": utcnow()},
    )


def delete_cursor(session: Session, name: str) -> None:
    session.execute(delete(ConsumerCursor).where(ConsumerCursor.name == name))


@dataclass(frozen=True)
class Counters:
    """A consumer's counters (``ConsumerCursor``): all nodes' together."""

    handled: int = 0
    failures: int = 0
    last_error: str | None = None
    last_error_at: dt.datetime | None = None


def counters(session: Session, name: str) -> Counters:
    row = session.get(ConsumerCursor, name)
    if row is None:
        return Counters()
    return Counters(row.handled or 0, row.failures or 0, row.last_error, row.last_error_at)


def position(session: Session, name: str) -> int:
    return int(
        session.scalar(select(ConsumerCursor.position).where(ConsumerCursor.name == name)) or 0
    )


@dataclass(frozen=True)
class _Read:
    start: int  # the cursor, past any backlog dropped
    end: int  # the log's end when the batch was read
    batch: list[Event]


def _drop_backlog(session: Session, consumer: Consumer, current: int, end: int) -> int:
    """Where to start so that at most ``max_backlog`` events are left; counts the others."""
    limit = consumer.max_backlog
    if limit <= 0 or end - current <= limit:
        consumer.measured(end - current, 0)
        return current
    keep_from = int(
        session.scalar(
            select(Event.seq)
            .where(Event.seq > current)
            .order_by(Event.seq.desc())
            .offset(limit)
            .limit(1)
        )
        or current
    )
    dropped = int(
        session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.seq > current, Event.seq <= keep_from)
        )
        or 0
    )
    if dropped:
        log.warning(
            "consumer backlog over its bound: oldest events dropped",
            consumer=consumer.name,
            dropped=dropped,
        )
    consumer.measured(end - keep_from, dropped)
    return keep_from


def _read(session: Session, consumer: Consumer, current: int) -> _Read:
    # Read the end first: appends commit in position order (see events.service), so every
    # event up to it is visible to the read that follows.
    end = events.last_position(session)
    start = _drop_backlog(session, consumer, current, end)
    if end <= start:
        return _Read(start, end, [])
    wanted = consumer.wanted_types(session)
    return _Read(start, end, events.read_after(session, start, consumer.batch_size, wanted, end))


def _done(consumer: Consumer, read: _Read, outcome: Progress | None) -> Progress:
    done = len(read.batch) if outcome is None else outcome.done
    if not 0 <= done <= len(read.batch):
        raise ValueError(f"consumer {consumer.name!r} reported {done} of {len(read.batch)} done")
    return Progress(done, outcome.error if outcome else None)


def _new_position(consumer: Consumer, read: _Read, done: int) -> int:
    if done == len(read.batch) and done < consumer.batch_size:
        # Everything up to the end was either handed over or not wanted.
        return read.end
    return read.batch[done - 1].seq if done else read.start


ERROR_CHARS = 500  # ConsumerCursor.last_error


def _advance(session: Session, name: str, old: int, new: int, progress: Progress) -> None:
    """The new position, with the batch's counters: what was handled, and a failure."""
    values: dict[str, object] = {}
    if new != old:
        values.update(position=new, updated_at=utcnow())
    if progress.done:
        values["handled"] = ConsumerCursor.handled + progress.done
    if progress.error is not None:
        values.update(
            failures=ConsumerCursor.failures + 1,
            last_error=progress.error[:ERROR_CHARS],
            last_error_at=utcnow(),
        )
    if values:
        # Only from where this batch started: never move a cursor back, or past a position
        # someone else wrote meanwhile (whose batch counted itself).
        session.execute(
            update(ConsumerCursor)
            .where(ConsumerCursor.name == name, ConsumerCursor.position == old)
            .values(**values)
        )


def _finish(consumer: Consumer, read: _Read, progress: Progress, new: int) -> int:
    if progress.error is not None:
        raise BatchIncompleteError(progress.error)
    # 0 tells the runner to wait: the log is drained, or the consumer took nothing now.
    return 0 if new >= read.end or progress.done == 0 else progress.done


def run_batch(db: Database, consumer: Consumer) -> int:
    """Process one batch; returns how many events it handled, or 0 when there is nothing
    more to do now (the end of the log, or nothing the consumer would take yet).  A failure
    the consumer reports is raised as :class:`BatchIncompleteError`, after the events it did
    handle are recorded."""
    if consumer.outside_transaction:
        return _run_outside(db, consumer)
    with db.transaction() as session:
        current = session.scalar(
            select(ConsumerCursor.position)
            .where(ConsumerCursor.name == consumer.name)
            .with_for_update()
        )
        if current is None:
            if not consumer.create_cursor:
                return 0
            ensure_cursor(session, consumer.name)
            current = 0
        read = _read(session, consumer, int(current))
        outcome = consumer.handle(session, read.batch) if read.batch else None
        if callable(outcome) or isinstance(outcome, CheckpointedSend):
            raise TypeError(f"consumer {consumer.name!r} returned a send: set outside_transaction")
        progress = _done(consumer, read, outcome)
        new = _new_position(consumer, read, progress.done)
        _advance(session, consumer.name, int(current), new, progress)
    return _finish(consumer, read, progress, new)


def _run_outside(db: Database, consumer: Consumer) -> int:
    with exclusive(db, f"consumer:{consumer.name}") as held:
        if not held:
            return 0  # another node feeds this consumer now
        prepared = _prepare_outside(db, consumer)
        if prepared is None:
            return 0
        current, read, outcome = prepared
        # The read transaction has ended: the send holds nothing open.
        if isinstance(outcome, CheckpointedSend):
            checkpoint = Checkpoint(consumer.name, current)
            try:
                result: Progress | None = outcome.run(checkpoint)
            except CursorMovedError:
                return 0  # another node handled this batch: read again from its cursor
            current = checkpoint.position
        else:
            result = outcome() if callable(outcome) else outcome
        progress = _done(consumer, read, result)
        new = _new_position(consumer, read, progress.done)
        with db.transaction() as session:
            _advance(session, consumer.name, current, new, progress)
    return _finish(consumer, read, progress, new)


def _prepare_outside(
    db: Database, consumer: Consumer
) -> tuple[int, _Read, Progress | Send | CheckpointedSend | None] | None:
    for _ in range(2):
        with db.reading() as session:
            current = session.scalar(
                select(ConsumerCursor.position).where(ConsumerCursor.name == consumer.name)
            )
            if current is not None:
                read = _read(session, consumer, int(current))
                outcome = consumer.handle(session, read.batch) if read.batch else None
                return int(current), read, outcome
        if not consumer.create_cursor:
            return None
        with db.transaction() as session:
            ensure_cursor(session, consumer.name)
    return None


@dataclass
class _Running:
    consumer: Consumer
    wake: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class ConsumerRunner:
    """Runs each consumer in a thread of its own (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        # What wake() reads: replaced, never changed, so waking takes no lock.
        self._wake_flags: tuple[threading.Event, ...] = ()
        self._started = False

    def add(self, consumer: Consumer) -> None:
        """Start running ``consumer`` (at once when the runner has started)."""
        with self._lock:
            if consumer.name in self._running:
                raise ValueError(f"a consumer named {consumer.name!r} already runs")
            running = _Running(consumer)
            self._running[consumer.name] = running
            self._wake_flags = (*self._wake_flags, running.wake)
            if self._started:
                self._start(running)

    def remove(self, name: str, timeout: float = 15) -> None:
        """Stop the consumer named ``name`` (after its current batch) and close it."""
        with self._lock:
            running = self._running.pop(name, None)
            if running is None:
                return
            self._wake_flags = tuple(f for f in self._wake_flags if f is not running.wake)
        self._halt(running, timeout)

    def names(self) -> set[str]:
        with self._lock:
            return set(self._running)

    def wake(self) -> None:
        for flag in self._wake_flags:
            flag.set()

    def start(self) -> None:
        with self._lock:
            self._started = True
            for running in self._running.values():
                self._start(running)

    def stop(self, timeout: float = 15) -> None:
        with self._lock:
            self._started = False
            stopping = list(self._running.values())
            self._running.clear()
            self._wake_flags = ()
        for running in stopping:
            running.stop.set()
            running.wake.set()
        for running in stopping:
            self._halt(running, timeout)

    def _start(self, running: _Running) -> None:
        running.thread = threading.Thread(
            target=self._loop,
            args=(running,),
            name=f"consumer-{running.consumer.name}",
            daemon=True,
        )
        running.thread.start()

    @staticmethod
    def _halt(running: _Running, timeout: float) -> None:
        running.stop.set()
        running.wake.set()
        if running.thread is not None:
            running.thread.join(timeout)
        running.consumer.close()

    def _loop(self, running: _Running) -> None:
        consumer, retry = running.consumer, RETRY_FIRST_SECONDS
        while not running.stop.is_set():
            try:
                handled = run_batch(self.db, consumer)
            except Exception as exc:  # a database hiccup or a receiver down: retry, never die
                if isinstance(exc, BatchIncompleteError):
                    log.warning(
                        "consumer batch incomplete; will retry",
                        consumer=consumer.name,
                        error=str(exc),
                        retry_in=retry,
                    )
                else:
                    log.exception(
                        "consumer batch failed; will retry", consumer=consumer.name, retry_in=retry
                    )
                consumer.failed()
                # Only stopping cuts a backoff short: new events do not make a receiver return.
                running.stop.wait(retry)
                retry = min(retry * 2, RETRY_MAX_SECONDS)
                continue
            retry = RETRY_FIRST_SECONDS
            if handled == 0:
                consumer.idle()
                running.wake.wait(consumer.poll_seconds)
                running.wake.clear()
