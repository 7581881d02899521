"""The event log's append: positions in the order given, each uid stored once, search
terms only for the events stored (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from garrison.common.catalogue import CATALOGUE, validate
from garrison.server.events.models import Event, EventTerm
from garrison.server.events.service import NewEvent, append, purge
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database


def started(uid: str, n: int) -> NewEvent:
    data = validate(
        CATALOGUE["process_started"],
        {
            "time": 1_790_000_000 + n,
            "unique_pid": str(n),
            "pid": n,
            "file_path": f"/usr/bin/tool{n}",
            "file_name": f"tool{n}",
            "sha256": f"{n:064x}",
        },
    )
    return NewEvent("process_started", data, 1, "station", uid)


def test_positions_follow_the_batch_and_duplicates_get_none(db: Database) -> None:
    with db.transaction() as session:
        first = append(session, [started("a", 1), started("b", 2)])
    a, b = first
    assert a is not None
    assert b is not None
    assert a < b
    batch = [started("c", 3), started("a", 1), started("d", 4), started("c", 3), started("e", 5)]
    with db.transaction() as session:
        positions = append(session, batch)
    c, dup_a, d, dup_c, e = positions
    assert dup_a is None
    assert dup_c is None
    assert c is not None
    assert d is not None
    assert e is not None
    assert b < c < d < e
    with db.reading() as session:
        stored = {u: s for u, s in session.execute(select(Event.uid, Event.seq))}
        assert stored == {"a": a, "b": b, "c": c, "d": d, "e": e}
        # Terms of the skipped duplicates are not stored twice.
        hashes = session.scalars(
            select(EventTerm.seq).where(EventTerm.role == "hash").order_by(EventTerm.seq)
        ).all()
        assert hashes == sorted(stored.values())


def test_a_large_batch_maps_every_position(db: Database) -> None:
    """More rows than one multi-row INSERT carries: every position still matches its uid."""
    with db.transaction() as session:
        append(session, [started(f"old{i}", i) for i in range(0, 3000, 2)])
    batch = [started(f"old{i}" if i % 2 == 0 else f"new{i}", i) for i in range(3000)]
    with db.transaction() as session:
        positions = append(session, batch)
    assert all(p is None for p in positions[0::2])
    fresh = [p for p in positions[1::2] if p is not None]
    assert len(fresh) == len(positions[1::2])
    assert fresh == sorted(fresh)
    with db.reading() as session:
        by_uid = {u: s for u, s in session.execute(select(Event.uid, Event.seq))}
        assert [by_uid[f"new{i}"] for i in range(1, 3000, 2)] == fresh
        assert session.scalar(select(func.count()).select_from(Event)) == 3000


def test_rows_read_back_as_given_and_positions_survive_a_purge(db: Database) -> None:
    """The bulk write (COPY, executemany) stores what the ORM reads back unchanged, and a
    position once given is never given again, even after retention emptied the log."""
    with db.transaction() as session:
        (seq,) = append(session, [started("x", 7)])
    with db.reading() as session:
        event = session.get(Event, seq)
        assert event is not None
        assert event.time == dt.datetime.fromtimestamp(1_790_000_007, dt.UTC)
        assert event.data["file_name"] == "tool7"
        assert event.received_at.tzinfo is not None
        terms = set(session.execute(select(EventTerm.role, EventTerm.value)))
        assert ("hash", f"{7:064x}") in terms
    with db.transaction() as session:
        assert purge(session, "process_started", utcnow() + dt.timedelta(days=1), 100) == 1
    with db.transaction() as session:
        (after,) = append(session, [started("y", 8)])
    assert after is not None
    assert seq is not None
    assert after > seq
