"""The antivirus state a station reports (State task)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from garrison.common.catalogue import CATALOGUE
from garrison.server.errors import NotFoundError
from garrison.server.states.models import StationState
from garrison.server.store.base import column_length, utcnow

GLOBAL_STATUS_LENGTH = column_length(StationState.global_status)
# A State's modules become one indexed field each of virus_bases_received and
# components_list_received: at most as many as those events hold.
MAX_MODULES = min(
    family.max_items
    for name in ("virus_bases_received", "components_list_received")
    for family in CATALOGUE[name].families
)


def record(
    session: Session,
    station_id: int,
    global_status: str,
    global_update_time: dt.datetime | None,
    modules: list[dict[str, Any]],
    avdetails: list[Any],
    content_serial: int | None = None,
) -> StationState:
    state = session.get(StationState, station_id)
    if state is None:
        state = StationState(station_id=station_id)
        session.add(state)
    state.global_status = global_status[:64]
    state.global_update_time = global_update_time
    state.modules = modules
    state.avdetails = avdetails
    state.content_serial = content_serial
    state.updated_at = utcnow()
    return state


def get(session: Session, station_id: int) -> StationState:
    state = session.get(StationState, station_id)
    if state is None:
        raise NotFoundError(f"station {station_id} has not reported a state yet")
    return state


def search(
    session: Session, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[StationState]:
    query = select(StationState).order_by(StationState.station_id)
    if status:
        query = query.where(StationState.global_status == status)
    return list(session.scalars(query.limit(limit).offset(offset)))


def stale_bases(
    session: Session, before: dt.datetime, limit: int
) -> tuple[list[StationState], int]:
    """Stations whose signature bases were last updated before ``before`` (or never
    reported), the oldest first, and how many there are."""
    stale = (StationState.global_update_time < before) | StationState.global_update_time.is_(None)
    total = session.scalar(select(func.count()).select_from(StationState).where(stale))
    rows = session.scalars(
        select(StationState)
        .where(stale)
        .order_by(StationState.global_update_time.nulls_first(), StationState.station_id)
        .limit(limit)
    )
    return list(rows), int(total or 0)
