from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Ctx, Operator, Viewer
from garrison.server.adminapi.inputs import Id, Limit, Offset, UtcTime
from garrison.server.alerts import actions
from garrison.server.alerts import service as alerts
from garrison.server.scans import service as scans

router = APIRouter(tags=["alerts"])


@router.get("/alerts", response_model=s.Page[s.AlertOut])
def list_alerts(
    actor: Viewer,
    ctx: Ctx,
    station_id: Id | None = None,
    threat: Annotated[str | None, Query(max_length=255)] = None,
    acknowledged: bool | None = None,
    since: UtcTime | None = None,
    job_id: Id | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> s.Page[s.AlertOut]:
    with ctx.db.reading() as session:
        rows, total = alerts.search(
            session,
            station_id=station_id,
            threat=threat,
            acknowledged=acknowledged,
            since=since,
            job_id=job_id,
            limit=limit,
            offset=offset,
        )
        items = [s.AlertOut.model_validate(a) for a in rows]
    return s.Page(items=items, total=total, limit=limit, offset=offset)


@router.post("/alerts/acknowledge", response_model=list[s.AlertOut])
def acknowledge(body: s.AckIn, actor: Operator, ctx: Ctx) -> list[s.AlertOut]:
    acknowledged = actions.acknowledge(ctx.db, actor, body.alert_ids)
    return [s.AlertOut.model_validate(a) for a in acknowledged]


@router.get("/scans", response_model=s.Page[s.ScanOut], tags=["scans"])
def list_scans(
    actor: Viewer,
    ctx: Ctx,
    station_id: Id | None = None,
    job_id: Id | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> s.Page[s.ScanOut]:
    with ctx.db.reading() as session:
        rows, total = scans.search(
            session, station_id=station_id, job_id=job_id, limit=limit, offset=offset
        )
        items = [s.ScanOut.model_validate(sc) for sc in rows]
    return s.Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/scans/{scan_id}", response_model=s.ScanOut, tags=["scans"])
def get_scan(scan_id: Id, actor: Viewer, ctx: Ctx) -> s.ScanOut:
    with ctx.db.reading() as session:
        return s.ScanOut.model_validate(scans.get(session, scan_id))
