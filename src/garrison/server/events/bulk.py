"""The event log's bulk write: new events and their search terms in one pass per backend.

Called by :func:`garrison.server.events.service.append` with the log locked (the advisory
lock on PostgreSQL; SQLite's single writer), so reading which uids are stored, taking log
positions and writing the rows cannot interleave with another append: positions are
handed out in commit order, as consumers' cursors need (a consumer that read up to N never
later finds a committed event below N).

- PostgreSQL: the day partitions the rows fall in are created if missing
  (:mod:`garrison.server.events.partitions`), ``SELECT … = ANY`` finds the uids already
  stored, one ``setval`` takes a block of positions from the log's sequence, then ``COPY``
  writes the events and ``COPY`` their terms (psycopg 3's copy protocol: no statement per
  row, no RETURNING).  The log is partitioned by the event's time, so no index holds every
  uid: a row whose time is its producer's (a retry carries the same time) is looked up in
  its day's partition only, the one its first copy is in; a row timed by the server's clock
  at receipt (its retry gets a later time) is looked up in every partition.  A generated
  uid is new by construction and not looked up at all.
- SQLite: the same uid probe (one JSON array parameter), positions after the highest ever given (the
  AUTOINCREMENT counter, so positions are never reused after a purge), then the driver's
  ``executemany`` of one prepared INSERT per table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.orm import Session

from garrison.server.events import partitions
from garrison.server.events.models import Event


@dataclass(frozen=True)
class Row:
    """An event to store, its search terms computed; ``seq`` is given by :func:`store`."""

    uid: str
    type: str
    station_id: int | None
    origin: str
    severity: int
    time: dt.datetime
    received_at: dt.datetime
    data: dict[str, Any]
    terms: frozenset[tuple[str, str]]
    # The uid was the producer's (False: generated here, so never stored before).
    named: bool = True
    # The time was the producer's (False: the server's clock at receipt).
    own_time: bool = True


def store(session: Session, rows: Sequence[Row]) -> list[int | None]:
    """Write the rows whose uid is not stored yet (``rows`` hold distinct uids); returns
    each row's log position, None for a uid already stored."""
    if not rows:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return _store_postgresql(session, rows)
    return _store_sqlite(session, rows)


def _positions(rows: Sequence[Row], stored: set[str], first: int) -> list[int | None]:
    positions: list[int | None] = []
    seq = first
    for row in rows:
        if row.uid in stored:
            positions.append(None)
        else:
            positions.append(seq)
            seq += 1
    return positions


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def _store_postgresql(session: Session, rows: Sequence[Row]) -> list[int | None]:
    raw = session.connection().connection.driver_connection
    if raw is None:
        raise RuntimeError("the session's connection has no driver connection")
    created = set(partitions.ensure(session, {partitions.day_of(row.time) for row in rows}))
    with raw.cursor() as cur:
        stored = _stored_postgresql(cur, rows, created)
        count = len(rows) - len(stored)
        if count == 0:
            return [None] * len(rows)
        # A block of ``count`` positions in one call; the log lock keeps any other append
        # from drawing from the sequence meanwhile, so the block is contiguous.
        cur.execute(
            "SELECT setval(s, nextval(s) + %s - 1) FROM pg_get_serial_sequence('events', 'seq') s",
            (count,),
        )
        fetched = cur.fetchone()
        if fetched is None:
            raise RuntimeError("the event log's sequence gave no position")
        positions = _positions(rows, stored, int(fetched[0]) - count + 1)
        with cur.copy(
            "COPY events (seq, uid, type, station_id, origin, severity, time, received_at, data)"
            " FROM STDIN"
        ) as copy:
            for row, seq in zip(rows, positions, strict=True):
                if seq is not None:
                    copy.write_row(
                        (
                            seq,
                            row.uid,
                            row.type,
                            row.station_id,
                            row.origin,
                            row.severity,
                            row.time,
                            row.received_at,
                            _dumps(row.data),
                        )
                    )
        with cur.copy("COPY event_terms (seq, role, value, time) FROM STDIN") as copy:
            for row, seq in zip(rows, positions, strict=True):
                if seq is not None:
                    for role, value in row.terms:
                        copy.write_row((seq, role, value, row.time))
    return positions


def _stored_postgresql(cur: Any, rows: Sequence[Row], created: set[dt.date]) -> set[str]:
    """The uids of ``rows`` already in the log (see the module's note on where each is
    looked up); ``created``: days whose partitions were just made (empty, not probed)."""
    by_day: dict[dt.date, list[str]] = {}
    anywhere: list[str] = []
    for row in rows:
        if not row.named:
            continue
        if row.own_time:
            by_day.setdefault(partitions.day_of(row.time), []).append(row.uid)
        else:
            anywhere.append(row.uid)
    stored: set[str] = set()
    for day, uids in by_day.items():
        if day not in created:
            cur.execute(
                # The table name is made from a date, never from input.
                f"SELECT uid FROM {partitions.qualified('events', day)} WHERE uid = ANY(%s)",  # noqa: S608
                (uids,),
            )
            stored.update(uid for (uid,) in cur.fetchall())
    if anywhere:
        cur.execute("SELECT uid FROM events WHERE uid = ANY(%s)", (anywhere,))
        stored.update(uid for (uid,) in cur.fetchall())
    return stored


def _bind(session: Session, column: str) -> Callable[[Any], Any]:
    """The very conversion SQLAlchemy applies to the column's values (UTC datetimes as
    text, JSON through the engine's serializer), so the rows read back as before."""
    dialect = session.get_bind().dialect
    processor = Event.__table__.c[column].type.dialect_impl(dialect).bind_processor(dialect)
    if processor is None:
        return lambda value: value
    return processor


def _store_sqlite(session: Session, rows: Sequence[Row]) -> list[int | None]:
    raw = session.connection().connection.driver_connection
    if raw is None:
        raise RuntimeError("the session's connection has no driver connection")
    # One parameter, however large the batch: the uids as a JSON array.
    probe = raw.execute(
        "SELECT uid FROM events WHERE uid IN (SELECT value FROM json_each(?))",
        (_dumps([row.uid for row in rows]),),
    )
    stored = {uid for (uid,) in probe}
    if len(stored) == len(rows):
        return [None] * len(rows)
    # AUTOINCREMENT's counter is the highest position ever given, even if purged since.
    (top,) = raw.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
        " coalesce((SELECT max(seq) FROM events), 0))"
    ).fetchone()
    positions = _positions(rows, stored, int(top) + 1)
    when, data = _bind(session, "time"), _bind(session, "data")
    raw.executemany(
        "INSERT INTO events (seq, uid, type, station_id, origin, severity, time, received_at,"
        " data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                seq,
                row.uid,
                row.type,
                row.station_id,
                row.origin,
                row.severity,
                when(row.time),
                when(row.received_at),
                data(row.data),
            )
            for row, seq in zip(rows, positions, strict=True)
            if seq is not None
        ],
    )
    raw.executemany(
        "INSERT INTO event_terms (seq, role, value, time) VALUES (?, ?, ?, ?)",
        [
            (seq, role, value, when(row.time))
            for row, seq in zip(rows, positions, strict=True)
            if seq is not None
            for role, value in row.terms
        ],
    )
    return positions
