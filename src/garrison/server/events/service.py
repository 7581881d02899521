"""Appending to the event log, and searching it.

Appends are batched (:mod:`garrison.server.events.bulk`: COPY on PostgreSQL, executemany on
SQLite) and de-duplicated by the producer's event id.  On PostgreSQL, appends take a
transaction-scoped advisory lock so that log positions become visible in order: a consumer
that has read up to position N can never later find a committed event below N.  (SQLite
serialises writers anyway.)
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, text, tuple_
from sqlalchemy.orm import Session

from garrison.common.catalogue import (
    CATALOGUE,
    EventInvalidError,
    event_time,
    search_terms,
    validate,
)
from garrison.common.catalogue_types import EventType
from garrison.common.vocabulary import severity_rank
from garrison.server.errors import InvalidInputError
from garrison.server.events import bulk, partitions
from garrison.server.events.models import Event, EventTerm
from garrison.server.store.base import utcnow
from garrison.server.store.effects import Signal, signal

APPEND_LOCK = 0x6A17750  # the advisory lock key of log appends


@dataclass(frozen=True)
class NewEvent:
    type: str
    data: dict[str, Any]  # already validated and normalised
    station_id: int | None
    origin: str
    uid: str | None = None
    time: dt.datetime | None = None
    severity: str | None = None


def lock_log(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": APPEND_LOCK})


def append(session: Session, events: Sequence[NewEvent]) -> list[int | None]:
    """Store events; returns each one's log position, or None for a duplicate uid."""
    if not events:
        return []
    lock_log(session)
    signal(session, Signal.EVENTS_APPENDED)
    now = utcnow()
    rows: list[bulk.Row] = []
    first: dict[str, int] = {}  # uid -> index of its first event in this batch
    for index, event in enumerate(events):
        uid = event.uid or uuidlib.uuid4().hex
        if uid in first:
            continue
        first[uid] = index
        declared = CATALOGUE[event.type]
        own_time = event.time or event_time(declared, event.data)
        rows.append(
            bulk.Row(
                uid=uid,
                type=event.type,
                station_id=event.station_id,
                origin=event.origin,
                severity=severity_rank(event.severity or declared.severity),
                time=own_time or now,
                received_at=now,
                data=event.data,
                terms=frozenset(search_terms(declared, event.data)),
                named=event.uid is not None,
                own_time=own_time is not None,
            )
        )
    # No probe-then-insert race: the log is locked (above) until this transaction ends.
    positions: list[int | None] = [None] * len(events)
    for row, seq in zip(rows, bulk.store(session, rows), strict=True):
        positions[first[row.uid]] = seq
    return positions


def _server_event(declared: EventType, data: dict[str, Any]) -> dict[str, Any]:
    """A server event's data, validated.  Its values come from requests (a station's name, a
    threat's path): one the catalogue refuses is the request's fault, a domain error (4xx),
    never a crash (500) that drops the connection and, for a refusal, its record."""
    try:
        return validate(declared, {k: v for k, v in data.items() if v is not None})
    except EventInvalidError as exc:
        raise InvalidInputError(
            f"{exc.field or 'value'} of the {declared.name} event: {exc.problem}", field=exc.field
        ) from None


def emit(
    session: Session,
    event_type: str,
    station_id: int | None,
    data: dict[str, Any],
    *,
    uid: str | None = None,
    time: dt.datetime | None = None,
) -> int | None:
    """Record an event only the server sees; its data must match the catalogue."""
    clean = _server_event(CATALOGUE[event_type], data)
    return append(session, [NewEvent(event_type, clean, station_id, "server", uid, time)])[0]


def emit_many(
    session: Session,
    event_type: str,
    station_id: int | None,
    datas: Sequence[dict[str, Any]],
    uids: Sequence[str | None] | None = None,
) -> list[int | None]:
    """Record several events of one type in one append; ``uids`` (one per event, ``None`` for
    a generated one) when the station named the events beforehand."""
    declared = CATALOGUE[event_type]
    named = list(uids) if uids is not None else [None] * len(datas)
    if len(named) != len(datas):
        raise ValueError("emit_many: one uid (or None) per event")
    return append(
        session,
        [
            NewEvent(
                event_type,
                _server_event(declared, data),
                station_id,
                "server",
                uid,
            )
            for data, uid in zip(datas, named, strict=True)
        ],
    )


def last_position(session: Session) -> int:
    return int(session.scalar(select(func.max(Event.seq))) or 0)


def read_after(
    session: Session,
    position: int,
    limit: int,
    types: Collection[str] | None = None,
    until: int | None = None,
) -> list[Event]:
    """Events after ``position`` in order; only ``types`` (when given), up to ``until``."""
    query = select(Event).where(Event.seq > position)
    if types is not None:
        if not types:
            return []
        query = query.where(Event.type.in_(types))
    if until is not None:
        query = query.where(Event.seq <= until)
    return list(session.scalars(query.order_by(Event.seq).limit(limit)))


def types_after(session: Session, position: int, limit: int) -> tuple[int, set[str]]:
    """The log's position now and the types of (at most ``limit``) events after
    ``position``: what the web console's live stream tells open pages about."""
    now = last_position(session)
    if now <= position:
        return now, set()
    rows = session.scalars(
        select(Event.type).where(Event.seq > position).order_by(Event.seq.desc()).limit(limit)
    )
    return now, set(rows)


# Every listing of events, newest first: by the event's time, and by log position among
# events of the same time, so that the order is total and the same in every listing.
NEWEST_FIRST = (Event.time.desc(), Event.seq.desc())


@dataclass(frozen=True)
class EventQuery:
    station_id: int | None = None
    types: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    hash: str | None = None
    process: str | None = None
    path: str | None = None
    user: str | None = None
    host: str | None = None
    ip: str | None = None
    port: str | None = None
    unique_pid: str | None = None
    parent_unique_pid: str | None = None


# EventQuery's term filters and the term role each one looks up (event_terms.role).
TERM_FILTERS = (
    ("hash", "hash"),
    ("process", "process"),
    ("path", "path"),
    ("user", "user"),
    ("host", "host"),
    ("ip", "ip"),
    ("port", "port"),
    ("unique_pid", "upid"),
    ("parent_unique_pid", "pupid"),
)


def holding(terms: Any, by_time: bool) -> Any:
    """The condition "the event is one of ``terms``" (a SELECT of ``EventTerm.seq``, filtered).

    ``by_time`` (PostgreSQL): matched by (seq, time), the log's key there.  A term carries its
    event's time, so each match probes its own day's partition of the events (runtime
    pruning) instead of every day's, and the planner no longer prefers scanning every
    partition whole once the matches number a few thousand (an IOC sweep over 10M events:
    1.8 s at p50 before, tens of milliseconds after).  SQLite keeps the plain ``seq IN``:
    there ``seq`` is the rowid, and the terms' index answers it alone."""
    if by_time:
        return tuple_(Event.seq, Event.time).in_(terms.add_columns(EventTerm.time))
    return Event.seq.in_(terms)


def _term_filter(
    role: str, value: str, since: dt.datetime | None, until: dt.datetime | None, by_time: bool
) -> Any:
    """Events holding the term.  The terms carry their event's time: bounded by the search's
    range too, the lookup touches only that range's partitions on PostgreSQL."""
    normalized = value.strip().lower()
    terms = select(EventTerm.seq).where(EventTerm.role == role, EventTerm.value == normalized)
    if since is not None:
        terms = terms.where(EventTerm.time >= since)
    if until is not None:
        terms = terms.where(EventTerm.time < until)
    return holding(terms, by_time)


def search_query(q: EventQuery, by_time: bool = False) -> Any:
    """The search's SELECT of events, unordered (its plan is what the pruning test reads);
    ``by_time`` as :func:`holding` takes it (true on PostgreSQL)."""
    unknown = [t for t in q.types if t not in CATALOGUE]
    if unknown:
        raise InvalidInputError(f"unknown event type {unknown[0]!r}", field="type")
    query = select(Event)
    if q.station_id is not None:
        query = query.where(Event.station_id == q.station_id)
    if q.types:
        query = query.where(Event.type.in_(q.types))
    if q.since is not None:
        query = query.where(Event.time >= q.since)
    if q.until is not None:
        query = query.where(Event.time < q.until)
    for name, role in TERM_FILTERS:
        value = getattr(q, name)
        if value:
            query = query.where(_term_filter(role, value, q.since, q.until, by_time))
    return query


def search(session: Session, q: EventQuery, limit: int, offset: int) -> tuple[list[Event], int]:
    query = search_query(q, partitions.is_postgresql(session))
    total = session.scalar(query.with_only_columns(func.count(Event.seq)))
    rows = session.scalars(query.order_by(*NEWEST_FIRST).limit(limit).offset(offset))
    return list(rows), int(total or 0)


def ioc_sweep(session: Session, hashes: Sequence[str], limit: int) -> tuple[list[Event], list[int]]:
    """Events holding any of the hashes (MD5, SHA-1 or SHA-256), and the stations that saw
    them."""
    clean = sorted({h.strip().lower() for h in hashes})
    for h in clean:
        if len(h) not in (32, 40, 64) or any(c not in "0123456789abcdef" for c in h):
            raise InvalidInputError(
                f"not an MD5, SHA-1 or SHA-256 digest: {h[:80]!r}", field="hashes"
            )
    terms = select(EventTerm.seq).where(EventTerm.role == "hash", EventTerm.value.in_(clean))
    matching = holding(terms, partitions.is_postgresql(session))
    events = list(
        session.scalars(select(Event).where(matching).order_by(*NEWEST_FIRST).limit(limit))
    )
    stations = {
        sid
        for sid in session.scalars(select(Event.station_id).where(matching).distinct())
        if sid is not None
    }
    return events, sorted(stations)


def purge(session: Session, event_type: str, received_before: dt.datetime, batch: int) -> int:
    """Delete at most ``batch`` expired events of one type (short transactions, so ingestion
    is never blocked for long).  Age counts from receipt, never from the event's own time:
    a station whose clock is wrong must not make its events vanish on arrival."""
    victims = (
        select(Event.seq)
        .where(Event.type == event_type, Event.received_at < received_before)
        .order_by(Event.seq)
        .limit(batch)
    )
    seqs = list(session.scalars(victims))
    if not seqs:
        return 0
    session.execute(delete(EventTerm).where(EventTerm.seq.in_(seqs)))
    session.execute(delete(Event).where(Event.seq.in_(seqs)))
    return len(seqs)
