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
    assigned_to: Annotated[
        str | None, Query(max_length=64, description="a username; empty: the unassigned")
    ] = None,
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
            assigned_to=assigned_to,
            limit=limit,
            offset=offset,
        )
        items = [s.AlertOut.model_validate(a) for a in rows]
    return s.Page(items=items, total=total, limit=limit, offset=offset)


@router.post("/alerts/acknowledge", response_model=list[s.AlertOut])
def acknowledge(body: s.AckIn, actor: Operator, ctx: Ctx) -> list[s.AlertOut]:
    acknowledged = actions.acknowledge(ctx.db, actor, body.alert_ids)
    return [s.AlertOut.model_validate(a) for a in acknowledged]


@router.post("/alerts/assign", response_model=list[s.AlertOut])
def assign(body: s.AssignIn, actor: Operator, ctx: Ctx) -> list[s.AlertOut]:
    """Assign alerts to a user (``assignee``), or unassign them (``null``)."""
    assigned = actions.assign(ctx.db, actor, body.alert_ids, body.assignee)
    return [s.AlertOut.model_validate(a) for a in assigned]


@router.get("/alerts/{alert_id}", response_model=s.AlertDetailOut)
def get_alert(alert_id: Id, actor: Viewer, ctx: Ctx) -> s.AlertDetailOut:
    """An alert with its comments, oldest first."""
    with ctx.db.reading() as session:
        alert = s.AlertOut.model_validate(alerts.get(session, alert_id))
        notes = [s.CommentOut.model_validate(c) for c in alerts.comments(session, alert_id)]
    return s.AlertDetailOut(**alert.model_dump(), comments=notes)


@router.post("/alerts/{alert_id}/comments", response_model=s.CommentOut, status_code=201)
def comment(alert_id: Id, body: s.CommentIn, actor: Operator, ctx: Ctx) -> s.CommentOut:
    return s.CommentOut.model_validate(actions.comment(ctx.db, actor, alert_id, body.body))


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
