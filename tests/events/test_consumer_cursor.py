"""A consumer's cursor: every event it wants, once and in order; the events it does not
want are passed over without being handed to it, and its cursor still reaches the end."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.orm import Session

from garrison.server.audit.actor import Actor
from garrison.server.audit.models import AuditEntry
from garrison.server.events import consumers
from garrison.server.events.models import Event
from garrison.server.events.service import NewEvent, append
from garrison.server.procedures import service as procedures
from garrison.server.procedures.dispatcher import ProcedureConsumer
from garrison.server.procedures.runner import ProcedureRunner
from garrison.server.procedures.sandbox import Limits
from garrison.server.procedures.workers import WorkerPool
from garrison.server.store.engine import Database

WANTED = "threat_detected"
OTHER = "component_started"


class Recorder(consumers.Consumer):
    name = "recorder"
    batch_size = 3

    def __init__(self, types: frozenset[str] | None) -> None:
        self.types = types
        self.seen: list[int] = []
        self.batches = 0

    def wanted_types(self, session: Session) -> frozenset[str] | None:
        return self.types

    def handle(self, session: Session, batch: Sequence[Event]) -> None:
        self.batches += 1
        self.seen.extend(e.seq for e in batch)


def add(db: Database, types: list[str]) -> list[int]:
    with db.transaction() as session:
        seqs = append(session, [NewEvent(t, {}, None, "test") for t in types])
    return [s for s in seqs if s is not None]


def drain(db: Database, consumer: Recorder | ProcedureConsumer) -> None:
    for _ in range(100):
        if consumers.run_batch(db, consumer) == 0:
            return
    raise RuntimeError("the consumer never reached the end of the log")


def cursor(db: Database, name: str) -> int:
    with db.reading() as session:
        return consumers.position(session, name)


def test_a_consumer_of_every_type_reads_every_event_in_batches(db: Database) -> None:
    seqs = add(db, [WANTED, OTHER] * 4)
    recorder = Recorder(None)
    drain(db, recorder)
    assert recorder.seen == seqs
    assert recorder.batches == 3
    assert cursor(db, "recorder") == seqs[-1]


def test_only_the_wanted_types_are_handed_over_and_the_cursor_reaches_the_end(
    db: Database,
) -> None:
    types = [OTHER, WANTED, OTHER, OTHER, WANTED, OTHER, OTHER, OTHER, WANTED, OTHER]
    seqs = add(db, types)
    recorder = Recorder(frozenset({WANTED}))
    drain(db, recorder)
    assert recorder.seen == [s for s, t in zip(seqs, types, strict=True) if t == WANTED]
    assert cursor(db, "recorder") == seqs[-1]
    # Later events: only the new wanted ones, once.
    more = add(db, [WANTED, OTHER])
    drain(db, recorder)
    assert recorder.seen[-1] == more[0]
    assert len(recorder.seen) == 4
    assert cursor(db, "recorder") == more[-1]


def test_more_wanted_events_than_a_batch_are_paged_in_order(db: Database) -> None:
    types = [WANTED, OTHER, WANTED, WANTED, WANTED, OTHER, WANTED, WANTED, WANTED, OTHER]
    seqs = add(db, types)
    recorder = Recorder(frozenset({WANTED}))
    drain(db, recorder)
    assert recorder.seen == [s for s, t in zip(seqs, types, strict=True) if t == WANTED]
    assert cursor(db, "recorder") == seqs[-1]


def test_wanting_nothing_moves_the_cursor_without_handing_anything(db: Database) -> None:
    seqs = add(db, [WANTED, OTHER, WANTED])
    recorder = Recorder(frozenset())
    drain(db, recorder)
    assert recorder.seen == []
    assert recorder.batches == 0
    assert cursor(db, "recorder") == seqs[-1]


def test_the_procedure_consumer_wants_the_types_of_its_enabled_procedures(db: Database) -> None:
    consumer = ProcedureConsumer(ProcedureRunner(db, WorkerPool(1), Limits()))
    actor = Actor(username="test", role="admin")
    with db.transaction() as session:
        assert consumer.wanted_types(session) == frozenset()
        procedures.put(session, actor, WANTED, "return nil")
        procedures.put(session, actor, OTHER, "return nil", enabled=False)
        procedures.put(session, actor, "station_authorization_in_progress", "return nil")
    with db.transaction() as session:
        # The authorization procedure runs synchronously, never from the log.
        assert consumer.wanted_types(session) == frozenset({WANTED})


class Counting:
    """A database whose transactions are counted."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.opened = 0

    def transaction(self) -> AbstractContextManager[Session]:
        self.opened += 1
        return self.db.transaction()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_events_whose_procedure_writes_nothing_need_no_transaction_of_their_own(
    db: Database,
) -> None:
    """Runs that succeed with nothing to apply are passed over without a transaction each;
    an event whose run writes still gets its own (once), and the cursor reaches the end."""
    pool = WorkerPool(1)
    try:
        runner = ProcedureRunner(db, pool, Limits())
        consumer = ProcedureConsumer(runner)
        actor = Actor(username="test", role="admin")
        with db.transaction() as session:
            procedures.put(
                session,
                actor,
                WANTED,
                "local args = ... if args.write then garrison.audit('wrote', args.n) end",
            )
        seqs = []
        with db.transaction() as session:
            for n in range(7):
                data = {"n": str(n), **({"write": True} if n == 3 else {})}
                seqs.extend(append(session, [NewEvent(WANTED, data, None, "test")]))
        settled = Counting(db)
        runner.db = settled  # type: ignore[assignment]  # where the consumer settles runs
        drain(db, consumer)
        assert cursor(db, consumer.name) == seqs[-1]
        # One for the event that wrote; none for the six others.
        assert settled.opened == 1, settled.opened
        with db.reading() as session:
            entries = session.query(AuditEntry).filter_by(action="procedure.wrote")
            wrote = [e.target for e in entries]
        assert wrote == ["3"]
    finally:
        pool.close()
