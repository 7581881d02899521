from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from garrison.common.catalogue import ALL
from garrison.server.adminapi import convert
from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx, Viewer
from garrison.server.adminapi.inputs import Id, Limit, Offset, UtcTime
from garrison.server.events import actions, retention
from garrison.server.events import service as events

router = APIRouter(prefix="/events", tags=["events"])


@router.get("", response_model=s.Page[s.EventOut], summary="Search events, newest first")
def search_events(
    actor: Viewer,
    ctx: Ctx,
    station_id: Id | None = None,
    type: Annotated[list[str] | None, Query(description="one or more event types")] = None,
    since: UtcTime | None = None,
    until: UtcTime | None = None,
    hash: Annotated[str | None, Query(max_length=64, description="MD5, SHA-1 or SHA-256")] = None,
    process: Annotated[str | None, Query(max_length=255)] = None,
    path: Annotated[str | None, Query(max_length=255)] = None,
    user: Annotated[str | None, Query(max_length=255)] = None,
    host: Annotated[str | None, Query(max_length=255)] = None,
    ip: Annotated[str | None, Query(max_length=64)] = None,
    port: Annotated[int | None, Query(ge=0, le=65535)] = None,
    unique_pid: Annotated[str | None, Query(max_length=255, description="a UniquePID")] = None,
    parent_unique_pid: Annotated[
        str | None, Query(max_length=255, description="the parent's UniquePID")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> s.Page[s.EventOut]:
    query = events.EventQuery(
        station_id=station_id,
        types=tuple(type or ()),
        since=since,
        until=until,
        hash=hash,
        process=process,
        path=path,
        user=user,
        host=host,
        ip=ip,
        port=None if port is None else str(port),
        unique_pid=unique_pid,
        parent_unique_pid=parent_unique_pid,
    )
    with ctx.db.reading() as session:
        rows, total = events.search(session, query, limit, offset)
        items = [convert.event(e) for e in rows]
    return s.Page(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/ioc-sweep",
    response_model=s.IocOut,
    summary="Events and stations that saw any of these hashes",
)
def ioc_sweep(body: s.IocIn, actor: Viewer, ctx: Ctx) -> s.IocOut:
    with ctx.db.reading() as session:
        rows, stations = events.ioc_sweep(session, body.hashes, body.limit)
        return s.IocOut(events=[convert.event(e) for e in rows], station_ids=stations)


@router.get("/types", response_model=list[s.EventTypeOut], summary="The event catalogue")
def event_types(actor: Viewer) -> list[s.EventTypeOut]:
    return [
        s.EventTypeOut(
            name=e.name,
            source=e.source,
            origin=e.origin,
            procedure=e.procedure,
            severity=e.severity,
            eset_type=e.eset_type,
            telemetry=e.telemetry,
            fields=[
                {"name": f.name, "type": f.type, "required": f.required, "doc": f.doc}
                for f in e.fields
            ]
            + [
                {"name": f"{m.name}_N", "type": m.type, "required": m.required, "doc": m.doc}
                for fam in e.families
                for m in fam.members
            ],
        )
        for e in ALL
    ]


@router.get("/retention", response_model=dict[str, int], summary="Days each event type is kept")
def get_retention(actor: Viewer, ctx: Ctx) -> dict[str, int]:
    with ctx.db.reading() as session:
        return retention.get_all(session)


@router.patch("/retention", response_model=dict[str, int])
def set_retention(
    actor: Admin, ctx: Ctx, body: Annotated[dict[str, Any], Body()]
) -> dict[str, int]:
    return actions.set_retention(ctx.db, actor, body)
