from __future__ import annotations

from fastapi import APIRouter

from garrison.server.adminapi import convert
from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Ctx, Operator, Viewer
from garrison.server.adminapi.inputs import Id, Limit, Offset
from garrison.server.jobs import actions
from garrison.server.jobs import service as jobs

router = APIRouter(prefix="/jobs", tags=["jobs"])
# A job may target 100,000 stations: lists carry the first ones, the detail pages the rest.
LIST_TARGETS = 100


@router.post(
    "", response_model=s.JobOut, status_code=201, summary="Create a job for stations and/or a group"
)
def create_job(body: s.JobIn, actor: Operator, ctx: Ctx) -> s.JobOut:
    view = actions.create_job(
        ctx.db,
        actor,
        body.type,
        body.priority,
        body.params,
        station_ids=body.station_ids,
        group=body.group,
        target_limit=LIST_TARGETS,
    )
    return convert.job(view)


@router.get("", response_model=s.Page[s.JobOut], summary="Jobs with per-station status")
def list_jobs(
    actor: Viewer,
    ctx: Ctx,
    station_id: Id | None = None,
    status: str | None = None,
    type: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> s.Page[s.JobOut]:
    with ctx.db.reading() as session:
        rows, total = jobs.search(
            session, station_id=station_id, status=status, job_type=type, limit=limit, offset=offset
        )
        items = [convert.job(v) for v in jobs.views(session, rows, LIST_TARGETS)]
    return s.Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=s.JobOut)
def get_job(job_id: Id, actor: Viewer, ctx: Ctx) -> s.JobOut:
    with ctx.db.reading() as session:
        return convert.job(jobs.views(session, [jobs.get(session, job_id)])[0])


@router.post(
    "/{job_id}/cancel",
    response_model=s.CancelOut,
    summary="Cancel a job for stations that have not downloaded it yet",
)
def cancel_job(
    job_id: Id, actor: Operator, ctx: Ctx, body: s.CancelIn | None = None
) -> s.CancelOut:
    count = actions.cancel_job(ctx.db, actor, job_id, body.station_ids if body else None)
    return s.CancelOut(job_id=job_id, cancelled=count)
