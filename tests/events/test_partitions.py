"""PostgreSQL's day partitions of the event log: made on demand by the append, duplicates
still refused across partitions, retention dropping whole days, searches pruned to their
range (read from EXPLAIN).  On SQLite the log is one table: the same appends and searches
behave alike (the duplicate test runs there too)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql

from garrison.common.catalogue import CATALOGUE, validate
from garrison.server.events import partitions
from garrison.server.events.models import Event, EventTerm
from garrison.server.events.retention import purge_expired
from garrison.server.events.service import EventQuery, NewEvent, append, search, search_query
from garrison.server.store.engine import Database

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def started(uid: str | None, when: dt.datetime, sha: int = 1) -> NewEvent:
    """A process_started event (its own time, as that type always carries)."""
    raw: dict[str, Any] = {
        "time": when.timestamp(),
        "unique_pid": "7",
        "pid": 7,
        "file_path": "/usr/bin/tool",
        "sha256": f"{sha:064x}",
    }
    data = validate(CATALOGUE["process_started"], raw)
    return NewEvent("process_started", data, 1, "station", uid, when)


def connected(uid: str) -> NewEvent:
    """An event with no time of its own: the server's clock at receipt times it."""
    data = validate(CATALOGUE["CONNECTED"], {"HOST_NAME": "ws-1"})
    return NewEvent("CONNECTED", data, 1, "station", uid)


def pg_only(db: Database) -> None:
    if db.backend != "postgresql":
        pytest.skip("partitions are PostgreSQL's")


def test_an_append_makes_the_partitions_of_its_days(db: Database) -> None:
    pg_only(db)
    old = NOW - dt.timedelta(days=40)
    future = NOW + dt.timedelta(days=30)
    with db.transaction() as session:
        assert partitions.day_of(old) not in partitions.existing(session)
        positions = append(session, [started("a", old), started("b", future)])
    assert None not in positions
    with db.reading() as session:
        days = partitions.existing(session)
        assert {partitions.day_of(old), partitions.day_of(future)} <= set(days)
        held = session.execute(
            text(f"SELECT count(*) FROM {partitions.qualified('event_terms', old.date())}")
        ).scalar_one()
        assert held >= 1  # the terms went to the same day as their event


def test_duplicates_are_refused_across_partitions(db: Database) -> None:
    day1 = NOW - dt.timedelta(days=3)
    with db.transaction() as session:
        assert None not in append(session, [started("u1", day1), connected("u2")])
    with db.transaction() as session:
        # The same event again (its own time, its day's partition), and a server-timed
        # event retried (found wherever it is).
        again = append(session, [started("u1", day1), connected("u2")])
    assert again == [None, None]
    with db.transaction() as session:
        # The uid stored three days ago with its own time, re-sent as an event timed now
        # (another day's partition): still refused.
        assert append(session, [connected("u1")]) == [None]
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 2


def test_retention_drops_a_day_whose_events_all_expired(db: Database) -> None:
    pg_only(db)
    gone, kept = NOW - dt.timedelta(days=70), NOW - dt.timedelta(days=60)
    with db.transaction() as session:
        append(session, [started(f"g{i}", gone + dt.timedelta(minutes=i)) for i in range(5)])
        append(session, [started("k", kept)])
        threat = validate(CATALOGUE["threat"], {"time": kept.timestamp(), "threat_name": "X"})
        # A threat (365 days) on the kept day holds it; telemetry (30 days) does not.
        append(session, [NewEvent("threat", threat, 1, "station", "t", kept)])
    removed = purge_expired(db, now=NOW + dt.timedelta(days=40))
    with db.reading() as session:
        days = partitions.existing(session)
        types = set(session.scalars(select(Event.type)))
        terms = session.scalar(select(func.count()).select_from(EventTerm))
    assert partitions.day_of(gone) not in days
    assert partitions.day_of(kept) in days
    # 5 by the dropped partition, 1 by compacting the kept day; the threat stays.
    assert removed == 6
    assert types == {"threat"}
    assert terms == 0


def oid(db: Database, day: dt.date) -> int:
    with db.reading() as session:
        found = session.execute(
            text("SELECT to_regclass(:name)::oid"),
            {"name": f"{partitions.SCHEMA}.{partitions.name('events', day)}"},
        ).scalar_one()
    return int(found)


def test_retention_compacts_a_day_that_a_few_long_kept_events_hold(db: Database) -> None:
    """A day of expired telemetry with two threats (kept a year) in it: the day's
    partitions are made again holding only the threats, with their search terms, and the
    day still takes appends; a second round changes nothing."""
    pg_only(db)
    day = NOW - dt.timedelta(days=50)
    with db.transaction() as session:
        append(session, [started(f"x{i}", day + dt.timedelta(minutes=i), sha=i) for i in range(40)])
        for n in range(2):
            threat = validate(
                CATALOGUE["threat"],
                {"time": day.timestamp() + n, "threat_name": "X", "hash": f"{900 + n:040x}"},
            )
            append(session, [NewEvent("threat", threat, 1, "station", f"t{n}", day)])

    def terms_of_threats() -> set[tuple[int, str, str]]:
        with db.reading() as session:
            rows = session.execute(
                text(
                    "SELECT t.seq, t.role, t.value FROM event_terms t JOIN events e"
                    " ON e.seq = t.seq AND e.time = t.time WHERE e.type = 'threat'"
                )
            )
            return {(int(s), str(r), str(v)) for s, r, v in rows}

    before = terms_of_threats()
    assert before  # the threats' hashes are search terms
    table = oid(db, day.date())
    later = NOW + dt.timedelta(days=40)
    assert purge_expired(db, now=later) == 40
    assert oid(db, day.date()) != table  # made again, not deleted from row by row
    with db.reading() as session:
        held = session.execute(
            text(
                f"SELECT type, count(*) FROM {partitions.qualified('events', day.date())}"
                " GROUP BY type"
            )
        ).all()
    assert {str(k): int(n) for k, n in held} == {"threat": 2}
    assert terms_of_threats() == before
    with db.reading() as session:
        found, total = search(session, EventQuery(hash=f"{901:040x}"), 10, 0)
    assert [e.type for e in found] == ["threat"]
    assert total == 1
    table = oid(db, day.date())
    assert purge_expired(db, now=later) == 0  # nothing expired left: not compacted again
    assert oid(db, day.date()) == table
    with db.transaction() as session:
        assert None not in append(session, [started("late", day + dt.timedelta(hours=2))])


def test_retention_leaves_a_day_with_many_kept_events_to_the_row_purge(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_only(db)
    monkeypatch.setattr(partitions, "COMPACT_MAX_KEPT", 1)
    day = NOW - dt.timedelta(days=50)
    with db.transaction() as session:
        append(session, [started(f"y{i}", day + dt.timedelta(minutes=i)) for i in range(5)])
        for n in range(2):
            threat = validate(CATALOGUE["threat"], {"time": day.timestamp(), "threat_name": "X"})
            append(session, [NewEvent("threat", threat, 1, "station", f"u{n}", day)])
    table = oid(db, day.date())
    assert purge_expired(db, now=NOW + dt.timedelta(days=40)) == 5
    assert oid(db, day.date()) == table  # purged row by row
    with db.reading() as session:
        assert set(session.scalars(select(Event.type))) == {"threat"}


def plan(db: Database, query: Any) -> str:
    compiled = query.compile(
        dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"literal_binds": True},
    )
    with db.reading() as session:
        return "\n".join(r for (r,) in session.execute(text(f"EXPLAIN {compiled}")))


def test_a_searchs_time_range_touches_only_its_partitions(db: Database) -> None:
    pg_only(db)
    days = [NOW - dt.timedelta(days=n) for n in range(10, 20)]
    with db.transaction() as session:
        append(session, [started(f"e{i}", d, sha=i) for i, d in enumerate(days)])
    since = dt.datetime.combine(days[5].date(), dt.time(), dt.UTC)  # 15 days ago, midnight
    until = since + dt.timedelta(days=2)
    wanted = {
        partitions.name(t, since.date() + dt.timedelta(days=i))
        for t in partitions.TABLES
        for i in range(2)
    }
    for q in (
        EventQuery(since=since, until=until),
        EventQuery(since=since, until=until, hash=f"{15:064x}"),
        EventQuery(since=since, until=until, types=("process_started",), process="tool"),
    ):
        explained = plan(db, search_query(q, by_time=True))
        seen = set(re.findall(r"(events_p\d{8}|event_terms_p\d{8})", explained))
        expected = (
            wanted if (q.hash or q.process) else {w for w in wanted if w.startswith("events_")}
        )
        assert seen == expected, explained
    # And the figures are right: the two days' events.
    with db.reading() as session:
        rows, total = search(session, EventQuery(since=since, until=until), 10, 0)
    assert {r.uid for r in rows} == {"e4", "e5"}
    assert total == 2
    # Without a range every partition is read (the test can fail).
    assert (
        len(set(re.findall(r"events_p\d{8}", plan(db, search_query(EventQuery(), by_time=True)))))
        >= 10
    )


def test_every_connection_runs_without_jit(db: Database) -> None:
    """JIT compiled an IOC sweep for longer than it ran (bench/findings.md, session 14): it is
    off on every connection the pool makes, writing and reading, a fresh one included."""
    pg_only(db)
    db.engine.dispose()  # the next connections are new ones, set up by the connect hook
    with db.transaction() as session:
        assert session.scalar(text("SHOW jit")) == "off"
    with db.reading() as session, db.engine.connect() as other:
        assert session.scalar(text("SHOW jit")) == "off"
        assert other.scalar(text("SHOW jit")) == "off"
    with db.engine.connect() as conn:
        # The SET did not leave the connection in autocommit, nor in a transaction.
        conn.execute(text("CREATE TEMP TABLE jit_probe (x int)"))
        conn.rollback()
        assert conn.scalar(text("SELECT to_regclass('pg_temp.jit_probe')")) is None


def test_partitions_are_made_ahead_once(db: Database) -> None:
    pg_only(db)
    far = NOW.date() + dt.timedelta(days=400)
    with db.transaction() as session:
        made = partitions.create_ahead(session, far)
    assert made == [far + dt.timedelta(days=i) for i in range(partitions.AHEAD_DAYS + 1)]
    with db.transaction() as session:
        assert partitions.create_ahead(session, far) == []  # idempotent: every node runs it
        assert set(made) <= set(partitions.existing(session))
