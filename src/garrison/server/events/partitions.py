"""PostgreSQL's time partitions of the event log (``events``) and its search terms
(``event_terms``): one partition of each per UTC day of the events' own ``time``.

Why the event's own time, not the server's ``received_at``: searches filter on ``time``,
so a search's range prunes to its days' partitions; retention counts from ``received_at``,
so a partition is dropped only once every row in it was received longer ago than its
type's retention, checked with index probes per retention period; a day that a few
long-kept events hold is compacted to them (:func:`compact`).

Partitions live in their own schema (``event_partitions``), out of the listing of the
application's tables.  They are made:

- ahead of time, today and the next :data:`AHEAD_DAYS` days, by the retention loop every
  node runs (:func:`create_ahead`; idempotent, so several nodes or workers may run it);
- on demand by the append path, for a row whose day has no partition yet (a station whose
  clock is wrong, an agent sending a week-old spool), under the log's advisory lock that
  the append already holds (:func:`ensure`).  No default partition: rows caught in one
  would have to be moved out before a partition of their day could be attached, a scan of
  the default partition under a lock; creating the day's partition before the COPY costs
  one catalogue lookup per batch instead.

A partition is made as a plain table and then attached (``ATTACH PARTITION`` takes a SHARE
UPDATE EXCLUSIVE lock on the parent, which neither reads nor inserts wait for; ``CREATE
TABLE … PARTITION OF`` would take ACCESS EXCLUSIVE and queue behind every running search).
Dropping one detaches it first, with a short lock timeout (the detach takes ACCESS
EXCLUSIVE): behind a long search the drop gives up and the next retention round retries.

On SQLite none of this applies: the log stays one table (every function here is a no-op).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping

from sqlalchemy import text
from sqlalchemy.orm import Session

SCHEMA = "event_partitions"
TABLES = ("events", "event_terms")
DAY = dt.timedelta(days=1)
AHEAD_DAYS = 2
# How long a partition drop waits for the parent's lock before giving up until next round.
DROP_LOCK_TIMEOUT = "2s"
# A day whose expired events are gone but that holds at most this many unexpired ones is
# compacted (:func:`compact`) instead of purged row by row.
COMPACT_MAX_KEPT = 10_000

log = logging.getLogger(__name__)


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def day_of(when: dt.datetime) -> dt.date:
    """The UTC day a time falls in (naive times are UTC, as the store keeps them)."""
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC)
    return when.date()


def suffix(day: dt.date) -> str:
    return f"p{day:%Y%m%d}"


def name(table: str, day: dt.date) -> str:
    """A partition's name within :data:`SCHEMA`."""
    return f"{table}_{suffix(day)}"


def qualified(table: str, day: dt.date) -> str:
    return f'"{SCHEMA}"."{name(table, day)}"'


def _bounds(day: dt.date) -> tuple[str, str]:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return start.isoformat(), (start + DAY).isoformat()


def existing(session: Session) -> list[dt.date]:
    """The days that have an events partition, oldest first."""
    rows = session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE i.inhparent = 'events'::regclass AND n.nspname = :schema"
        ),
        {"schema": SCHEMA},
    )
    days = []
    for (relname,) in rows:
        tail = str(relname).rsplit("_p", 1)[-1]
        days.append(dt.datetime.strptime(tail, "%Y%m%d").date())
    return sorted(days)


def missing(session: Session, days: Iterable[dt.date]) -> list[dt.date]:
    wanted = sorted(set(days))
    if not wanted:
        return []
    rows = session.execute(
        text(
            "SELECT d FROM unnest(CAST(:names AS text[])) WITH ORDINALITY AS t(d, i)"
            " WHERE to_regclass(:schema || '.' || d) IS NULL ORDER BY i"
        ),
        {"names": [name("events", day) for day in wanted], "schema": SCHEMA},
    )
    absent = {str(n) for (n,) in rows}
    return [day for day in wanted if name("events", day) in absent]


def _create(session: Session, day: dt.date) -> None:
    low, high = _bounds(day)
    for table in TABLES:
        target = qualified(table, day)
        session.execute(
            text(f"CREATE TABLE IF NOT EXISTS {target} (LIKE {table} INCLUDING DEFAULTS)")
        )
        # The parent's indexes and keys are created on the new table by the attach (it is
        # empty: no scan, no wait).
        session.execute(
            text(
                f"ALTER TABLE {table} ATTACH PARTITION {target}"
                f" FOR VALUES FROM ('{low}') TO ('{high}')"
            )
        )


def ensure(session: Session, days: Iterable[dt.date]) -> list[dt.date]:
    """Create the partitions of the ``days`` that have none; the caller holds the log's
    advisory lock (so no other append or retention drop changes partitions meanwhile).
    Returns the days created."""
    if not is_postgresql(session):
        return []
    created = missing(session, days)
    for day in created:
        _create(session, day)
    return created


def create_ahead(session: Session, today: dt.date, ahead: int = AHEAD_DAYS) -> list[dt.date]:
    """Today's partitions and the next ``ahead`` days' (under the log's lock, taken here)."""
    if not is_postgresql(session):
        return []
    from garrison.server.events.service import lock_log

    wanted = [today + dt.timedelta(days=i) for i in range(ahead + 1)]
    if not missing(session, wanted):
        return []
    lock_log(session)
    return ensure(session, wanted)


def _unexpired(cutoffs: Mapping[str, dt.datetime]) -> tuple[str, dict[str, object]]:
    """A WHERE clause true for a row received after its type's cutoff, and its parameters:
    one (types, cutoff) pair per distinct cutoff, each answerable from the (type,
    received_at) index."""
    by_cutoff: dict[dt.datetime, list[str]] = {}
    for event_type, cutoff in cutoffs.items():
        by_cutoff.setdefault(cutoff, []).append(event_type)
    clauses: list[str] = []
    params: dict[str, object] = {}
    for i, (cutoff, types) in enumerate(sorted(by_cutoff.items())):
        clauses.append(f"(type = ANY(CAST(:types{i} AS text[])) AND received_at >= :cutoff{i})")
        params[f"types{i}"] = sorted(types)
        params[f"cutoff{i}"] = cutoff
    return " OR ".join(clauses) or "false", params


def unexpired_count(
    session: Session, day: dt.date, cutoffs: Mapping[str, dt.datetime], limit: int
) -> int:
    """How many of the day's events are still within their type's retention, counted up to
    ``limit + 1`` (enough to tell "at most ``limit``" from "more")."""
    # Only the catalogue's types are ever appended (the append looks each one up), so the
    # cutoffs name every type a partition can hold.
    where, params = _unexpired(cutoffs)
    target = qualified("events", day)
    return int(
        session.execute(
            text(
                f"SELECT count(*) FROM (SELECT 1 FROM {target} WHERE {where}"  # noqa: S608
                " LIMIT :limit) AS kept"
            ),
            {**params, "limit": limit + 1},
        ).scalar_one()
    )


def drop(session: Session, day: dt.date) -> int:
    """Detach and drop the day's partitions (terms, then events); returns the events it
    held.  The caller holds the log's lock and has checked :func:`unexpired_count`."""
    count = int(
        session.execute(text(f"SELECT count(*) FROM {qualified('events', day)}")).scalar_one()  # noqa: S608
    )
    session.execute(text(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'"))
    for table in reversed(TABLES):
        target = qualified(table, day)
        session.execute(text(f"ALTER TABLE {table} DETACH PARTITION {target}"))
        session.execute(text(f"DROP TABLE {target}"))
    return count


# Where the PostgreSQL schema differs from the models on purpose (the keys of a partitioned
# table must include its partition key; no foreign key between the partitioned tables): the
# schema comparison leaves exactly these out on PostgreSQL.
POSTGRESQL_KEY_DIFFERENCES = frozenset(
    {"uq_events_uid", "uq_events_uid_time", "fk_event_terms_seq_events"}
)


def compact(session: Session, day: dt.date, cutoffs: Mapping[str, dt.datetime]) -> int:
    """Drop a day's partitions keeping only its unexpired events: they (and their search
    terms) are copied aside, the day's partitions are dropped and made again, and the copies
    go back with their own sequence numbers and uids.  Returns the expired events so removed.

    For a day whose bulk has expired but that a few long-kept events hold (an alert kept a
    year among a day of telemetry kept 30 days): deleting the telemetry row by row would
    take a transaction per thousand rows and leave the partition's pages to vacuum; this is
    one statement per table.  The caller holds the log's lock and has checked that at most
    :data:`COMPACT_MAX_KEPT` events stay (:func:`unexpired_count`)."""
    where, params = _unexpired(cutoffs)
    events, terms = qualified("events", day), qualified("event_terms", day)
    expired = session.execute(
        text(f"SELECT 1 FROM {events} WHERE NOT ({where}) LIMIT 1"),  # noqa: S608
        params,
    ).first()
    if expired is None:
        return 0  # compacted already: only kept events left
    session.execute(
        text(
            f"CREATE TEMPORARY TABLE garrison_kept_events ON COMMIT DROP AS"  # noqa: S608
            f" SELECT * FROM {events} WHERE {where}"
        ),
        params,
    )
    session.execute(
        text(
            f"CREATE TEMPORARY TABLE garrison_kept_terms ON COMMIT DROP AS"  # noqa: S608
            f" SELECT t.* FROM {terms} t WHERE t.seq IN (SELECT seq FROM garrison_kept_events)"
        )
    )
    held = drop(session, day)
    _create(session, day)
    kept = session.execute(
        text(f"INSERT INTO {events} SELECT * FROM garrison_kept_events")  # noqa: S608
    ).rowcount  # type: ignore[attr-defined]
    session.execute(text(f"INSERT INTO {terms} SELECT * FROM garrison_kept_terms"))  # noqa: S608
    session.execute(text("DROP TABLE garrison_kept_events, garrison_kept_terms"))
    return held - int(kept)
