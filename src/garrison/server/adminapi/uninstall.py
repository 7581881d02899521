"""``POST /admin/v1/stations/{id}/uninstall-token``: the token ``garrison-agent uninstall
--token`` needs on that station (content/uninstall.py).  Admins only; audited."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from garrison.server.adminapi.deps import Admin, Ctx
from garrison.server.adminapi.schemas import Strict
from garrison.server.content import actions, uninstall

router = APIRouter(prefix="/stations", tags=["stations"])
StationId = Annotated[int, Path(description="the station's id", ge=1)]


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
