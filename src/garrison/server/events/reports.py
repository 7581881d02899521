"""Events a station sends (``POST /api/events``, a Garrison extension), in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from garrison.server.errors import ForbiddenError
from garrison.server.events import ingest
from garrison.server.events.ingest import ItemResult
from garrison.server.stations.credentials import AgentCredential, named_station
from garrison.server.store.engine import Database


@dataclass(frozen=True)
class EventsIngested:
    station_id: int
    results: list[ItemResult]
    stored: int
    duplicates: int
    refused: int
    shutting_down: bool  # the batch's last new lifecycle event is SHUTTING_DOWN


def ingest_events(
    db: Database, credential: AgentCredential, address: str, items: list[Any]
) -> EventsIngested:
    """Check each event against the catalogue and store the valid ones; the event log's
    consumers are woken at commit (``Signal.EVENTS_APPENDED``)."""
    if credential.station_id is None:
        raise ForbiddenError("sending events needs a station's own credential (its agent token)")
    with db.transaction() as session:
        return ingest_in(session, credential, address, items)


def ingest_in(
    session: Session, credential: AgentCredential, address: str, items: list[Any]
) -> EventsIngested:
    """One request's events, in a transaction the caller commits (possibly shared with
    other requests': ``events/batcher.py``)."""
    if credential.station_id is None:
        raise ForbiddenError("sending events needs a station's own credential (its agent token)")
    station = named_station(session, credential.station_id)
    results = ingest.ingest(session, station, address, items)
    counts = {"stored": 0, "duplicate": 0, "refused": 0}
    for r in results:
        counts[r.status] += 1
    return EventsIngested(
        credential.station_id,
        results,
        counts["stored"],
        counts["duplicate"],
        counts["refused"],
        ingest.says_shutting_down(results),
    )
