"""The bulk seeding tool: what it writes reads back as the store's own rows on both backends
(the events, their search terms, a search by hash finding them), and COPY's text format
keeps values with backslashes, tabs and newlines intact."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select, text

from bench import seed as bench_seed
from garrison.server.events import partitions
from garrison.server.events.models import Event, EventTerm
from garrison.server.events.service import EventQuery, search
from garrison.server.store.engine import Database


def test_seeded_events_read_back_and_are_found(db: Database, database_url: str) -> None:
    done = bench_seed.seed(database_url, 3_000, days=2, stations=50, seed=3)
    assert done.events == 3_000
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 3_000
        assert session.scalar(select(func.count()).select_from(EventTerm)) == done.terms
        sample = session.scalars(select(Event).order_by(Event.seq.desc()).limit(50)).all()
        for event in sample:
            data = event.data if isinstance(event.data, dict) else json.loads(event.data)
            stamp = dt.datetime.fromisoformat(data["time"].replace("Z", "+00:00"))
            assert abs(stamp - event.time.replace(tzinfo=dt.UTC)).total_seconds() < 1e-3
        with_hash = next(e for e in sample if "sha256" in e.data)
        found, total = search(session, EventQuery(hash=with_hash.data["sha256"]), 5000, 0)
    assert with_hash.seq in {e.seq for e in found}
    assert total == len(found)


def test_copy_text_keeps_escaped_values(db: Database) -> None:
    if db.backend != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    when = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    odd = "C:\\tools\tx\ny\rz"
    rows = [(10, "u-odd", "process_started", 1, when, {"file_path": odd}, {("path", odd)})]
    rendered = bench_seed._render(rows)
    with db.transaction() as session:
        partitions.ensure(session, {when.date()})
        raw = session.connection().connection.driver_connection
        assert bench_seed._copy(raw, rendered) == 1
    with db.reading() as session:
        data = session.execute(text("SELECT data FROM events WHERE seq = 10")).scalar_one()
        value = session.execute(text("SELECT value FROM event_terms WHERE seq = 10")).scalar_one()
    assert (data["file_path"], value) == (odd, odd)
