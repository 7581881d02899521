"""The Alembic migrations build exactly the schema the models declare, on every backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from garrison.server.events import partitions
from garrison.server.store import migrate
from garrison.server.store.engine import make_engine, normalize_url
from garrison.server.store.migrations.schema import metadata
from tests.conftest import BACKENDS, PG_URL


def schema_differences(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = list(compare_metadata(context, metadata))
    finally:
        engine.dispose()
    if engine.dialect.name != "postgresql":
        return differences
    # The partitioned event log's keys, as partitions.py explains; nothing else is left out.
    return [
        d
        for d in differences
        if not (
            d[0] in ("add_fk", "remove_fk", "add_constraint", "remove_constraint")
            and d[1].name in partitions.POSTGRESQL_KEY_DIFFERENCES
        )
    ]


def revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no migration has touched yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    if not PG_URL:
        pytest.skip("GARRISON_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    admin_url = normalize_url(PG_URL)
    name = f"garrison_migrations_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_migrated_database_matches_the_models(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    assert schema_differences(empty_url) == []
    assert revision(empty_url) == migrate.current_head()
    expected = {t.name for t in metadata.sorted_tables}
    assert table_names(empty_url) == expected | {"alembic_version"}


def test_test_databases_match_the_models(database_url: str) -> None:
    """The databases every other test runs on are the migrated schema, not create_all()."""
    assert schema_differences(database_url) == []
    assert revision(database_url) == migrate.current_head()


def test_upgrade_is_idempotent(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    migrate.upgrade(empty_url)
    assert schema_differences(empty_url) == []


def test_downgrade_to_base_and_up_again(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    command.downgrade(migrate.alembic_config(empty_url), "base")
    assert table_names(empty_url) <= {"alembic_version"}
    assert revision(empty_url) is None
    migrate.upgrade(empty_url)
    assert schema_differences(empty_url) == []


def test_an_empty_database_differs_from_the_models(empty_url: str) -> None:
    """The comparison can fail: against no schema at all it reports every table."""
    differences = schema_differences(empty_url)
    added = {d[1].name for d in differences if d[0] == "add_table"}
    assert added == {t.name for t in metadata.sorted_tables}


def test_a_missing_index_or_column_change_is_reported(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_alerts_station_time"))
            conn.execute(text("ALTER TABLE stations ADD COLUMN stray INTEGER"))
    finally:
        engine.dispose()
    differences = schema_differences(empty_url)
    summary = sorted(
        (d[0], f"{d[2]}.{d[3].name}") if d[0] == "remove_column" else (d[0], d[1].name)
        for d in differences
    )
    assert summary == [("add_index", "ix_alerts_station_time"), ("remove_column", "stations.stray")]


def test_0005_unwraps_alert_info_stored_nested(empty_url: str) -> None:
    """Alerts stored before 0005 hold ``{"info": <the agent's info>}``: an object so wrapped
    is unwrapped, a scalar (the column holds an object) stays under ``info``."""
    import datetime as dt

    from sqlalchemy import insert, select

    from garrison.server.alerts.models import Alert
    from garrison.server.stations.models import Station

    migrate.upgrade(empty_url, "0004")
    engine = make_engine(empty_url)
    now = dt.datetime.now(dt.UTC)
    infos = {
        "nested": {"info": {"sha256": "a" * 64}},
        "scalar": {"info": "in archive"},
        "empty": {},
    }
    try:
        with engine.begin() as conn:
            conn.execute(insert(Station).values(id=1, uuid="u-1"))
            for name, info in infos.items():
                conn.execute(
                    insert(Alert).values(
                        station_id=1,
                        threat_name=name,
                        filepath="/x",
                        detection_time=now,
                        received_at=now,
                        checksum=name,
                        info=info,
                    )
                )
        migrate.upgrade(empty_url)
        with engine.connect() as conn:
            stored = {
                name: info for name, info in conn.execute(select(Alert.threat_name, Alert.info))
            }
    finally:
        engine.dispose()
    assert stored == {"nested": {"sha256": "a" * 64}, "scalar": {"info": "in archive"}, "empty": {}}
    assert schema_differences(empty_url) == []


def test_0012_moves_existing_procedures_into_the_default_set_where_they_still_run(
    empty_url: str,
) -> None:
    """Procedures stored before procedure sets sit in ``default`` afterwards, with their
    history and failures, and the consumer still runs them."""
    import datetime as dt

    from garrison.server.audit.models import AuditEntry
    from garrison.server.events.service import NewEvent, append
    from garrison.server.procedures import service as procedures
    from garrison.server.procedures.dispatcher import ProcedureConsumer
    from garrison.server.procedures.runner import ProcedureRunner
    from garrison.server.procedures.sandbox import Limits
    from garrison.server.procedures.workers import WorkerPool
    from garrison.server.store.engine import Database
    from tests.events.test_consumer_cursor import drain

    migrate.upgrade(empty_url, "0010")
    engine = make_engine(empty_url)
    now = dt.datetime.now(dt.UTC)
    source = "local args = ...\ngarrison.audit('old_ran', args.virus)\n"
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO procedures (name, source, enabled, version, updated_at, "
                    "updated_by) VALUES ('threat_detected', :s, true, 2, :t, 'admin')"
                ),
                {"s": source, "t": now},
            )
            for version in (1, 2):
                conn.execute(
                    text(
                        "INSERT INTO procedure_versions (name, version, source, created_at, "
                        "created_by) VALUES ('threat_detected', :v, :s, :t, 'admin')"
                    ),
                    {"v": version, "s": source, "t": now},
                )
            conn.execute(
                text(
                    "INSERT INTO procedure_errors (procedure, event_seq, error, at) "
                    "VALUES ('threat_detected', NULL, 'old failure', :t)"
                ),
                {"t": now},
            )
    finally:
        engine.dispose()
    migrate.upgrade(empty_url)
    assert schema_differences(empty_url) == []
    db = Database(empty_url)
    pool = WorkerPool(1)
    try:
        with db.reading() as session:
            chains = procedures.enabled_chains(session, {"threat_detected"})
            assert [(link.set_name, link.version) for link in chains["threat_detected"]] == [
                ("default", 2)
            ]
            history = procedures.history(session, "threat_detected")
            assert [(v.set_name, v.version) for v in history] == [("default", 2), ("default", 1)]
            (error,) = procedures.recent_errors(session, "threat_detected", 10)
            assert (error.set_name, error.error) == ("default", "old failure")
            assert [s.name for s in procedures.list_sets(session)] == ["default"]
        with db.transaction() as session:
            append(session, [NewEvent("threat_detected", {"virus": "Old.Virus"}, None, "test")])
        drain(db, ProcedureConsumer(ProcedureRunner(db, pool, Limits())))
        with db.reading() as session:
            ran = session.scalars(
                select(AuditEntry.target).where(AuditEntry.action == "procedure.old_ran")
            ).all()
        assert list(ran) == ["Old.Virus"]
    finally:
        pool.close()
        db.dispose()


def test_0026_moves_a_populated_log_into_partitions_keeping_positions(empty_url: str) -> None:
    """Events and terms stored before 0026 are all there after it (on PostgreSQL in their
    days' partitions), terms with their event's time, and positions go on after the last."""
    import datetime as dt

    from garrison.common.catalogue import CATALOGUE, validate
    from garrison.server.events.service import NewEvent, append
    from garrison.server.store.engine import Database

    migrate.upgrade(empty_url, "0025")
    days = [dt.datetime(2026, 3, d, 12, tzinfo=dt.UTC) for d in (1, 2, 2, 9)]
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            for n, when in enumerate(days, start=1):
                conn.execute(
                    text(
                        "INSERT INTO events (uid, type, station_id, origin, severity, time,"
                        " received_at, data) VALUES (:uid, 'process_started', 1, 'station', 0,"
                        " :t, :t, '{}')"
                    ),
                    {"uid": f"u{n}", "t": when},
                )
            seqs = list(conn.scalars(text("SELECT seq FROM events ORDER BY seq")))
            for seq in seqs:
                conn.execute(
                    text("INSERT INTO event_terms (seq, role, value) VALUES (:s, 'hash', :v)"),
                    {"s": seq, "v": f"h{seq}"},
                )
    finally:
        engine.dispose()
    migrate.upgrade(empty_url)
    assert schema_differences(empty_url) == []
    db = Database(empty_url)
    try:
        with db.reading() as session:
            pairs = session.execute(
                text(
                    "SELECT e.uid, t.value FROM event_terms t JOIN events e"
                    " ON e.seq = t.seq AND e.time = t.time ORDER BY e.seq"
                )
            ).all()
            assert [tuple(p) for p in pairs] == [(f"u{i + 1}", f"h{s}") for i, s in enumerate(seqs)]
            if db.backend == "postgresql":
                assert {dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 9)} <= set(
                    partitions.existing(session)
                )
        data = validate(CATALOGUE["process_started"], {"time": 1_790_000_000, "unique_pid": "1"})
        with db.transaction() as session:
            again = append(session, [NewEvent("process_started", data, 1, "station", "u1")])
            (new,) = append(session, [NewEvent("process_started", data, 1, "station", "u9")])
        # u1 again, but with an own time on another day than its first copy: SQLite's one
        # table refuses the uid; PostgreSQL looks for it in that day's partition only (a
        # producer's retry carries the same time), so it is stored: docs/operations.md.
        if db.backend == "postgresql":
            assert again == [max(seqs) + 1]
            assert new == max(seqs) + 2
        else:
            assert again == [None]
            assert new == max(seqs) + 1
    finally:
        db.dispose()
