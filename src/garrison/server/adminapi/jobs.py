from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from garrison.server.adminapi import convert
from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Ctx, Operator, Viewer
from garrison.server.jobs import service as jobs

router = APIRouter(prefix="/jobs", tags=["jobs"])
# A job may target 100,000 stations: lists carry the first ones, the detail pages the rest.
LIST_TARGETS = 100


@router.post(
    "", response_model=s.JobOut, status_code=201, summary="Create a job for stations and/or a group"
)
def create_job(body: s.JobIn, actor: Operator, ctx: Ctx) -> s.JobOut:
    with ctx.db.transaction() as session:
        job, targeted = jobs.create(
            session,
            actor,
            body.type,
            body.priority,
            body.params,
            station_ids=body.station_ids,
            group=body.group,
        )
        counts = jobs.status_counts(session, [job.id])[job.id]
        out = convert.job(job, counts, jobs.targets(session, job.id)[:LIST_TARGETS])
    ctx.job_waiters.mark_queued(targeted)
    ctx.job_waiters.poke()  # long-polling agents on this node hear of it at once
    return out


@router.get("", response_model=s.Page[s.JobOut], summary="Jobs with per-station status")
def list_jobs(
    actor: Viewer,
    ctx: Ctx,
    station_id: int | None = None,
    status: str | None = None,
    type: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> s.Page[s.JobOut]:
    with ctx.db.reading() as session:
        rows, total = jobs.search(
            session, station_id=station_id, status=status, job_type=type, limit=limit, offset=offset
        )
        counts = jobs.status_counts(session, [j.id for j in rows])
        items = [
            convert.job(j, counts[j.id], jobs.targets(session, j.id)[:LIST_TARGETS]) for j in rows
        ]
    return s.Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=s.JobOut)
def get_job(job_id: int, actor: Viewer, ctx: Ctx) -> s.JobOut:
    with ctx.db.reading() as session:
        job = jobs.get(session, job_id)
        counts = jobs.status_counts(session, [job_id])[job_id]
        return convert.job(job, counts, jobs.targets(session, job_id))


@router.post(
    "/{job_id}/cancel",
    response_model=s.CancelOut,
    summary="Cancel a job for stations that have not downloaded it yet",
)
def cancel_job(
    job_id: int, actor: Operator, ctx: Ctx, body: s.CancelIn | None = None
) -> s.CancelOut:
    with ctx.db.transaction() as session:
        count = jobs.cancel(session, actor, job_id, body.station_ids if body else None)
    return s.CancelOut(job_id=job_id, cancelled=count)
