"""How long events are kept, per type, and the purge that enforces it."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.common.catalogue import CATALOGUE
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.errors import InvalidInputError
from garrison.server.events import partitions
from garrison.server.events.service import lock_log, purge
from garrison.server.options.models import Option
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database
from garrison.server.store.upsert import upsert

TELEMETRY_DAYS = 30
OTHER_DAYS = 365
MAX_DAYS = 36500
PREFIX = "retention:"

log = logging.getLogger(__name__)


def defaults() -> dict[str, int]:
    return {name: TELEMETRY_DAYS if e.telemetry else OTHER_DAYS for name, e in CATALOGUE.items()}


def get_all(session: Session) -> dict[str, int]:
    values = defaults()
    rows = session.execute(select(Option.key, Option.value).where(Option.key.startswith(PREFIX)))
    for key, value in rows:
        name = key[len(PREFIX) :]
        if name in values and isinstance(value, int):
            values[name] = value
    return values


def set_many(session: Session, actor: Actor, changes: dict[str, Any]) -> dict[str, int]:
    for name, days in changes.items():
        if name not in CATALOGUE:
            raise InvalidInputError(f"unknown event type {name!r}", field=name)
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            raise InvalidInputError(
                f"{name}: days must be an integer from 1 to {MAX_DAYS}", field=name
            )
    for name, days in changes.items():
        upsert(
            session,
            Option.__table__,  # type: ignore[arg-type]
            {"key": PREFIX + name, "value": days, "updated_at": utcnow()},
            keys=["key"],
            update=["value", "updated_at"],
        )
    audit.record(session, actor, "events.retention", "", **changes)
    return get_all(session)


def drop_expired_partitions(db: Database, days: dict[str, int], now: dt.datetime) -> int:
    """PostgreSQL: drop each day's partitions (events and terms) in which every event was
    received longer ago than its type's retention; returns the events so removed.  Only
    days that ended before the shortest retention's cutoff are candidates; each is checked
    with index probes (:func:`partitions.unexpired_count`), then, under the log's lock (an
    append creating that day's partition again waits, then finds it gone), dropped when
    nothing in it is kept, or compacted (:func:`partitions.compact`) when a few long-kept
    events are (an alert among a day of expired telemetry).  A day holding more kept events
    than :data:`partitions.COMPACT_MAX_KEPT` is left to the row-by-row purge."""
    cutoffs = {name: now - dt.timedelta(days=keep) for name, keep in days.items()}
    latest = max(cutoffs.values()).date()
    removed = 0
    with db.reading() as session:
        if not partitions.is_postgresql(session):
            return 0
        candidates = [d for d in partitions.existing(session) if d < latest]
    limit = partitions.COMPACT_MAX_KEPT
    for day in candidates:
        with db.transaction() as session:
            lock_log(session)
            kept = partitions.unexpired_count(session, day, cutoffs, limit)
            if kept > limit:
                continue
            if kept:
                count = partitions.compact(session, day, cutoffs)
            else:
                count = partitions.drop(session, day)
        removed += count
        if count:
            log.info(
                "retention %s the event partition of %s (%d expired events removed)",
                "compacted" if kept else "dropped",
                day,
                count,
            )
    return removed


def purge_expired(
    db: Database, batch: int = 1000, max_batches: int = 100, now: dt.datetime | None = None
) -> int:
    """Remove events received more than their type's retention ago (``now``: the server's
    clock unless given): on PostgreSQL whole day partitions first, then (both backends) the
    remaining expired rows in short transactions of at most ``batch`` rows each.  Also makes
    the coming days' partitions ahead of the appends that will need them."""
    with db.reading() as session:
        days = get_all(session)
    now = now or utcnow()
    with db.transaction() as session:
        partitions.create_ahead(session, now.date())
    removed = drop_expired_partitions(db, days, now)
    for name, keep in days.items():
        cutoff = now - dt.timedelta(days=keep)
        for _ in range(max_batches):
            with db.transaction() as session:
                count = purge(session, name, cutoff, batch)
            removed += count
            if count < batch:
                break
    return removed
