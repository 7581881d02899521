"""Tamper resistance, per station: ``POST /admin/v1/stations/{id}/uninstall-token``, the
token ``garrison-agent uninstall --token`` needs on that station (content/uninstall.py;
admins only, audited), and ``GET /admin/v1/stations/{id}/isolation``, whether it is
isolated and how often its agent found the isolation table tampered with since."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from garrison.server.adminapi.deps import Admin, Ctx, Viewer
from garrison.server.adminapi.inputs import ID_MAX
from garrison.server.adminapi.schemas import Strict
from garrison.server.content import actions, uninstall
from garrison.server.errors import NotFoundError
from garrison.server.events.service import EventQuery, search
from garrison.server.jobs import service as jobs
from garrison.server.stations.models import Station

router = APIRouter(prefix="/stations", tags=["stations"])
# Station ids are serial ``integer`` columns on PostgreSQL: a larger id is refused (422), not
# sent to the database (which answers "integer out of range").
StationId = Annotated[int, Path(description="the station's id", ge=1, le=ID_MAX)]


class UninstallTokenIn(Strict):
    expires_in: int = Field(
        default=3600, ge=60, le=uninstall.MAX_SECONDS, description="seconds the token is valid"
    )


class UninstallTokenOut(BaseModel):
    station_id: int
    token: str = Field(description="for garrison-agent uninstall --token on that station")
    expires_at: dt.datetime


@router.post(
    "/{station_id}/uninstall-token",
    response_model=UninstallTokenOut,
    status_code=201,
    summary="A token that lets the station's agent be uninstalled",
)
def issue(
    station_id: StationId, actor: Admin, ctx: Ctx, body: UninstallTokenIn | None = None
) -> UninstallTokenOut:
    seconds = (body or UninstallTokenIn()).expires_in
    token, expires = actions.uninstall_token(ctx.content, actor, station_id, seconds)
    return UninstallTokenOut(station_id=station_id, token=token, expires_at=expires)


class TamperedOut(BaseModel):
    time: dt.datetime
    change: str = Field(description="removed or changed")
    restored: bool


class IsolationOut(BaseModel):
    station_id: int
    isolated: bool = Field(description="its last successful network job isolated it")
    job_id: int | None = Field(description="that job")
    since: dt.datetime | None = Field(description="when that job ended")
    tampered: int = Field(description="isolation_tampered events since then")
    last_tampered: TamperedOut | None


@router.get("/{station_id}/isolation", response_model=IsolationOut, summary="Isolation state")
def isolation(station_id: StationId, actor: Viewer, ctx: Ctx) -> IsolationOut:
    with ctx.db.reading() as session:
        if session.get(Station, station_id) is None:
            raise NotFoundError(f"there is no station {station_id}")
        isolated, job_id, since = jobs.network_state(session, station_id)
        found: list[TamperedOut] = []
        total = 0
        if isolated:
            rows, total = search(
                session,
                EventQuery(types=("isolation_tampered",), station_id=station_id, since=since),
                1,
                0,
            )
            found = [
                TamperedOut(
                    time=e.time,
                    change=str(e.data.get("change")),
                    restored=bool(e.data.get("restored")),
                )
                for e in rows
            ]
    return IsolationOut(
        station_id=station_id,
        isolated=isolated,
        job_id=job_id,
        since=since,
        tampered=total,
        last_tampered=found[0] if found else None,
    )
