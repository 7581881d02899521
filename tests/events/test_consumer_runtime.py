"""The consumer runtime's options: work outside the transaction (an exporter's send), partial
progress, the backlog bound, consumers added and removed while the runner runs, and one node
at a time per consumer on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from garrison.server.events import consumers
from garrison.server.events.consumers import BatchIncompleteError, Consumer, Progress, Send
from garrison.server.events.models import ConsumerCursor, Event
from garrison.server.events.service import NewEvent, append
from garrison.server.store.engine import Database
from tests.support import wait_for

TYPE = "component_started"


def add(db: Database, count: int) -> list[int]:
    with db.transaction() as session:
        seqs = append(session, [NewEvent(TYPE, {}, None, "test") for _ in range(count)])
    return [s for s in seqs if s is not None]


def cursor(db: Database, name: str) -> int | None:
    with db.reading() as session:
        value = session.scalar(select(ConsumerCursor.position).where(ConsumerCursor.name == name))
        return None if value is None else int(value)


def open_transactions(db: Database) -> int:
    """Transactions open on the database right now (apart from the one asking, on
    PostgreSQL); on SQLite, connections checked out of the pool."""
    if db.backend == "postgresql":
        with db.engine.connect() as conn:
            return int(
                conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                    )
                )
                or 0
            )
    return int(db.engine.pool.checkedout())  # type: ignore[attr-defined]


class Sender(Consumer):
    """Sends outside the transaction; ``deliver`` decides what each send achieves."""

    outside_transaction = True
    batch_size = 4

    def __init__(self, deliver: Callable[[Sequence[Event]], Progress] | None = None) -> None:
        self.name = "sender"
        self.deliver = deliver or (lambda batch: Progress(len(batch)))
        self.sent: list[int] = []
        self.during_send: list[int] = []
        self.measures: list[tuple[int, int]] = []
        self.closed = threading.Event()
        self.db: Database | None = None

    def handle(self, session: Session, batch: Sequence[Event]) -> Progress | Send:
        events = list(batch)

        def send() -> Progress:
            if self.db is not None:
                self.during_send.append(open_transactions(self.db))
            progress = self.deliver(events)
            self.sent.extend(e.seq for e in events[: progress.done])
            return progress

        return send

    def measured(self, behind: int, dropped: int) -> None:
        self.measures.append((behind, dropped))

    def close(self) -> None:
        self.closed.set()


def drain(db: Database, consumer: Consumer) -> None:
    for _ in range(100):
        if consumers.run_batch(db, consumer) == 0:
            return
    raise RuntimeError("the consumer never reached the end of the log")


def test_a_send_runs_with_no_transaction_open(db: Database) -> None:
    seqs = add(db, 10)
    sender = Sender()
    sender.db = db
    drain(db, sender)
    assert sender.sent == seqs
    assert sender.during_send
    assert set(sender.during_send) == {0}
    assert cursor(db, "sender") == seqs[-1]


def test_a_partial_send_advances_past_what_was_done_and_is_retried_from_there(
    db: Database,
) -> None:
    seqs = add(db, 4)
    calls: list[list[int]] = []

    def deliver(batch: Sequence[Event]) -> Progress:
        calls.append([e.seq for e in batch])
        return Progress(1, "receiver went away") if len(calls) == 1 else Progress(len(batch))

    sender = Sender(deliver)
    with pytest.raises(BatchIncompleteError, match="receiver went away"):
        consumers.run_batch(db, sender)
    assert cursor(db, "sender") == seqs[0]
    with db.reading() as session:
        failed = consumers.counters(session, "sender")
    assert (failed.handled, failed.failures, failed.last_error) == (1, 1, "receiver went away")
    assert failed.last_error_at is not None
    drain(db, sender)
    assert calls == [seqs, seqs[1:]]
    assert sender.sent == seqs
    assert cursor(db, "sender") == seqs[-1]
    with db.reading() as session:
        done = consumers.counters(session, "sender")
        assert consumers.counters(session, "nobody") == consumers.Counters()
    # Every event once, the failure kept until the next one.
    assert (done.handled, done.failures, done.last_error) == (4, 1, "receiver went away")


def test_taking_nothing_yet_leaves_the_cursor_and_waits(db: Database) -> None:
    add(db, 3)
    sender = Sender(lambda batch: Progress(0))
    assert consumers.run_batch(db, sender) == 0
    assert cursor(db, "sender") == 0


def test_a_consumer_whose_cursor_is_made_elsewhere_does_nothing_without_it(db: Database) -> None:
    add(db, 3)
    sender = Sender()
    sender.create_cursor = False
    assert consumers.run_batch(db, sender) == 0
    assert sender.sent == []
    assert cursor(db, "sender") is None


def test_a_send_from_a_consumer_in_the_transaction_is_refused(db: Database) -> None:
    add(db, 1)
    sender = Sender()
    sender.outside_transaction = False
    with pytest.raises(TypeError, match="outside_transaction"):
        consumers.run_batch(db, sender)
    assert not cursor(db, "sender")  # rolled back: not made, or still at the start


def test_past_max_backlog_the_oldest_events_are_dropped_and_counted(db: Database) -> None:
    seqs = add(db, 10)
    sender = Sender()
    sender.max_backlog = 3
    drain(db, sender)
    assert sender.sent == seqs[-3:]
    assert sender.measures[0] == (3, 7)


def test_consumers_added_and_removed_while_the_runner_runs(db: Database) -> None:
    runner = consumers.ConsumerRunner(db)
    runner.start()
    try:
        seqs = add(db, 5)
        first = Sender()
        runner.add(first)
        wait_for(lambda: first.sent == seqs, what="the added consumer drained the log")
        with pytest.raises(ValueError, match="already runs"):
            runner.add(Sender())
        runner.remove("sender")
        assert first.closed.is_set()
        assert runner.names() == set()
        more = add(db, 2)
        runner.wake()
        second = Sender()
        runner.add(second)  # the same name again, from where the first one stopped
        wait_for(lambda: second.sent == more, what="the new consumer resumed at the cursor")
        assert first.sent == seqs
    finally:
        runner.stop()
    assert second.closed.is_set()


def test_a_failing_consumer_is_retried(db: Database) -> None:
    seqs = add(db, 2)
    failures = [0]

    def deliver(batch: Sequence[Event]) -> Progress:
        if failures[0] < 2:
            failures[0] += 1
            raise RuntimeError("database hiccup")
        return Progress(len(batch))

    sender = Sender(deliver)
    runner = consumers.ConsumerRunner(db)
    runner.add(sender)
    runner.start()
    try:
        wait_for(lambda: sender.sent == seqs, what="the consumer recovered")
    finally:
        runner.stop()
    assert failures[0] == 2


def test_one_node_at_a_time_feeds_an_outside_consumer(db: Database) -> None:
    """While one node sends a batch, another node's attempt at the same consumer does
    nothing (it does not wait, and sends nothing twice)."""
    if db.backend != "postgresql":
        pytest.skip("SQLite is one node")
    seqs = add(db, 3)
    other_node = Database(db.url)
    sending, release = threading.Event(), threading.Event()

    def slow(batch: Sequence[Event]) -> Progress:
        sending.set()
        release.wait(10)
        return Progress(len(batch))

    first, second = Sender(slow), Sender()
    worker = threading.Thread(target=consumers.run_batch, args=(db, first))
    worker.start()
    try:
        assert sending.wait(10)
        assert consumers.run_batch(other_node, second) == 0
        assert second.sent == []
    finally:
        release.set()
        worker.join(10)
        other_node.dispose()
    assert first.sent == seqs
    drain(db, second)
    assert second.sent == []
