"""The event log partitioned by time (PostgreSQL); search terms carry their event's time

Revision ID: 0026
Revises: 0025

``event_terms`` gains ``time``, its event's own time (copied from ``events``).

PostgreSQL: ``events`` and ``event_terms`` become tables partitioned by range of ``time``,
one partition per UTC day in the schema ``event_partitions``
(:mod:`garrison.server.events.partitions`).  The stored rows are copied into them (a
partition for every day that holds events, plus today and the next days), then the old
tables are dropped.  The log's sequence is kept (so positions go on where they were, and
consumers' cursors stay valid).  The keys include the partition key, as PostgreSQL
requires: ``events`` (seq, time) and unique (uid, time); ``event_terms`` (seq, role,
value, time), with no foreign key to ``events`` (retention drops a day's terms with its
events; row purges delete terms first, as they always have).  Indexes are built after the
copy, once, instead of row by row.

SQLite: the log stays one table; ``event_terms`` is rebuilt with the new column filled
from its events (SQLite cannot add a NOT NULL column without a default).
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | Sequence[str] | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "event_partitions"
AHEAD_DAYS = 2
EVENT_INDEXES = (
    ("ix_events_type_time", "type, time"),
    ("ix_events_station_time", "station_id, time"),
    ("ix_events_station_type_seq", "station_id, type, seq"),
    ("ix_events_type_received_at", "type, received_at"),
    ("ix_events_time", "time"),
)
EVENT_COLUMNS = "seq, uid, type, station_id, origin, severity, time, received_at, data"


def _sqlite_terms(with_time: bool) -> None:
    time_column = ", time DATETIME NOT NULL" if with_time else ""
    op.execute(
        "CREATE TABLE event_terms_new (seq INTEGER NOT NULL, role VARCHAR(8) NOT NULL,"
        f" value VARCHAR(255) NOT NULL{time_column},"
        " CONSTRAINT pk_event_terms PRIMARY KEY (seq, role, value),"
        " CONSTRAINT fk_event_terms_seq_events FOREIGN KEY(seq) REFERENCES events (seq)"
        " ON DELETE CASCADE)"
    )
    if with_time:
        op.execute(
            "INSERT INTO event_terms_new (seq, role, value, time) SELECT t.seq, t.role,"
            " t.value, e.time FROM event_terms t JOIN events e ON e.seq = t.seq"
        )
    else:
        op.execute(
            "INSERT INTO event_terms_new (seq, role, value) SELECT seq, role, value"
            " FROM event_terms"
        )
    op.execute("DROP TABLE event_terms")
    op.execute("ALTER TABLE event_terms_new RENAME TO event_terms")
    op.execute("CREATE INDEX ix_event_terms_lookup ON event_terms (role, value, seq)")


def _pg_days(bind: sa.engine.Connection, source: str) -> list[dt.date]:
    stored = bind.execute(
        sa.text(f"SELECT DISTINCT (time AT TIME ZONE 'UTC')::date FROM {source}")  # noqa: S608
    ).scalars()
    today = dt.datetime.now(dt.UTC).date()
    ahead = {today + dt.timedelta(days=i) for i in range(AHEAD_DAYS + 1)}
    return sorted(set(stored) | ahead)


def _pg_partition(table: str, day: dt.date) -> None:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    op.execute(
        f'CREATE TABLE "{SCHEMA}"."{table}_p{day:%Y%m%d}" PARTITION OF {table}'
        f" FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )


def _pg_upgrade() -> None:
    bind = op.get_bind()
    op.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
    op.execute("ALTER TABLE event_terms RENAME TO event_terms_unpartitioned")
    op.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    # The sequence outlives the old table: positions go on where they were.
    op.execute("ALTER SEQUENCE events_seq_seq OWNED BY NONE")
    op.execute(
        "CREATE TABLE events (seq BIGINT DEFAULT nextval('events_seq_seq') NOT NULL,"
        " uid VARCHAR(64) NOT NULL, type VARCHAR(64) NOT NULL, station_id INTEGER,"
        " origin VARCHAR(8) NOT NULL, severity SMALLINT NOT NULL,"
        " time TIMESTAMP WITH TIME ZONE NOT NULL,"
        " received_at TIMESTAMP WITH TIME ZONE NOT NULL, data JSON NOT NULL)"
        " PARTITION BY RANGE (time)"
    )
    op.execute(
        "CREATE TABLE event_terms (seq BIGINT NOT NULL, role VARCHAR(8) NOT NULL,"
        " value VARCHAR(255) NOT NULL, time TIMESTAMP WITH TIME ZONE NOT NULL)"
        " PARTITION BY RANGE (time)"
    )
    for day in _pg_days(bind, "events_unpartitioned"):
        _pg_partition("events", day)
        _pg_partition("event_terms", day)
    op.execute(
        f"INSERT INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM events_unpartitioned"  # noqa: S608
    )
    op.execute(
        "INSERT INTO event_terms (seq, role, value, time) SELECT t.seq, t.role, t.value, e.time"
        " FROM event_terms_unpartitioned t JOIN events_unpartitioned e ON e.seq = t.seq"
    )
    op.execute("DROP TABLE event_terms_unpartitioned")
    op.execute("DROP TABLE events_unpartitioned")
    op.execute("ALTER SEQUENCE events_seq_seq OWNED BY events.seq")
    op.execute("ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY (seq, time)")
    op.execute("ALTER TABLE events ADD CONSTRAINT uq_events_uid_time UNIQUE (uid, time)")
    for index, columns in EVENT_INDEXES:
        op.execute(f"CREATE INDEX {index} ON events ({columns})")
    op.execute(
        "ALTER TABLE event_terms ADD CONSTRAINT pk_event_terms PRIMARY KEY (seq, role, value, time)"
    )
    op.execute("CREATE INDEX ix_event_terms_lookup ON event_terms (role, value, seq)")
    op.execute("ANALYZE events")
    op.execute("ANALYZE event_terms")


def _pg_downgrade() -> None:
    op.execute("ALTER TABLE event_terms RENAME TO event_terms_partitioned")
    op.execute("ALTER TABLE events RENAME TO events_partitioned")
    op.execute("ALTER SEQUENCE events_seq_seq OWNED BY NONE")
    op.execute("ALTER TABLE events_partitioned DROP CONSTRAINT pk_events")
    op.execute("ALTER TABLE events_partitioned DROP CONSTRAINT uq_events_uid_time")
    for index, _ in EVENT_INDEXES:
        op.execute(f"DROP INDEX {index}")
    op.execute("ALTER TABLE event_terms_partitioned DROP CONSTRAINT pk_event_terms")
    op.execute("DROP INDEX ix_event_terms_lookup")
    op.execute(
        "CREATE TABLE events (seq BIGINT DEFAULT nextval('events_seq_seq') NOT NULL,"
        " uid VARCHAR(64) NOT NULL, type VARCHAR(64) NOT NULL, station_id INTEGER,"
        " origin VARCHAR(8) NOT NULL, severity SMALLINT NOT NULL,"
        " time TIMESTAMP WITH TIME ZONE NOT NULL,"
        " received_at TIMESTAMP WITH TIME ZONE NOT NULL, data JSON NOT NULL,"
        " CONSTRAINT pk_events PRIMARY KEY (seq), CONSTRAINT uq_events_uid UNIQUE (uid))"
    )
    op.execute(
        f"INSERT INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM events_partitioned"  # noqa: S608
    )
    op.execute(
        "CREATE TABLE event_terms (seq BIGINT NOT NULL, role VARCHAR(8) NOT NULL,"
        " value VARCHAR(255) NOT NULL,"
        " CONSTRAINT pk_event_terms PRIMARY KEY (seq, role, value),"
        " CONSTRAINT fk_event_terms_seq_events FOREIGN KEY(seq) REFERENCES events (seq)"
        " ON DELETE CASCADE)"
    )
    op.execute(
        "INSERT INTO event_terms (seq, role, value)"
        " SELECT DISTINCT seq, role, value FROM event_terms_partitioned"
    )
    op.execute("DROP TABLE event_terms_partitioned")
    op.execute("DROP TABLE events_partitioned")
    op.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
    op.execute("ALTER SEQUENCE events_seq_seq OWNED BY events.seq")
    for index, columns in EVENT_INDEXES:
        op.execute(f"CREATE INDEX {index} ON events ({columns})")
    op.execute("CREATE INDEX ix_event_terms_lookup ON event_terms (role, value, seq)")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _pg_upgrade()
    else:
        _sqlite_terms(with_time=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _pg_downgrade()
    else:
        _sqlite_terms(with_time=False)
