from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response, StreamingResponse

from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Ctx, Operator, Viewer
from garrison.server.adminapi.inputs import Id, Limit, Offset
from garrison.server.hunts import actions, results
from garrison.server.hunts import service as hunts
from garrison.server.hunts.models import Hunt
from garrison.server.store.engine import Database

router = APIRouter(prefix="/hunts", tags=["hunts"])


def _out(db: Database, hunt: Hunt) -> s.HuntOut:
    with db.reading() as session:
        progress = results.progress(session, hunt)
    return s.HuntOut(
        id=hunt.id,
        question=hunt.question,
        target=hunt.target,
        state=hunts.state(hunt),
        job_id=hunt.job_id,
        created_at=hunt.created_at,
        created_by=hunt.created_by,
        expires_at=hunt.expires_at,
        stopped_at=hunt.stopped_at,
        progress=s.HuntProgress(**progress),
    )


@router.post("", response_model=s.HuntOut, status_code=201, summary="Start a hunt")
def create_hunt(body: s.HuntIn, actor: Operator, ctx: Ctx) -> s.HuntOut:
    hunt = actions.create_hunt(
        ctx.db, actor, body.question, body.target, body.expires_in, body.priority
    )
    return _out(ctx.db, hunt)


@router.get("", response_model=s.Page[s.HuntOut], summary="Hunts, newest first, with progress")
def list_hunts(
    actor: Viewer,
    ctx: Ctx,
    state: Literal["active", "stopped", "expired"] | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> s.Page[s.HuntOut]:
    with ctx.db.reading() as session:
        rows, total = hunts.search(session, state_filter=state, limit=limit, offset=offset)
    return s.Page(items=[_out(ctx.db, h) for h in rows], total=total, limit=limit, offset=offset)


Found = Annotated[bool | None, Query(description="only stations that answered yes (or no)")]
Contains = Annotated[
    str | None, Query(max_length=4096, description="a path or sha256 containing this text")
]


@router.get(
    "/{hunt_id}",
    response_model=s.HuntDetailOut,
    summary="A hunt's progress, per-station results and aggregate",
)
def get_hunt(
    hunt_id: Id, actor: Viewer, ctx: Ctx, found: Found = None, contains: Contains = None
) -> s.HuntDetailOut:
    with ctx.db.reading() as session:
        hunt = hunts.get(session, hunt_id)
        rows = results.rows(session, hunt, found=found, contains=contains)
    base = _out(ctx.db, hunt)
    return s.HuntDetailOut(
        **base.model_dump(),
        results=[s.HuntStationOut(**r.as_dict()) for r in rows],
        aggregate=results.aggregate(rows),
    )


@router.post("/{hunt_id}/stop", response_model=s.HuntOut, summary="Stop a hunt")
def stop_hunt(hunt_id: Id, actor: Operator, ctx: Ctx) -> s.HuntOut:
    return _out(ctx.db, actions.stop_hunt(ctx.db, actor, hunt_id))


@router.get(
    "/{hunt_id}/results",
    summary="A hunt's per-station results: JSON, CSV or NDJSON",
    responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
    response_model=None,
)
def hunt_results(
    hunt_id: Id,
    actor: Viewer,
    ctx: Ctx,
    format: Literal["json", "csv", "ndjson"] = "json",
    found: Found = None,
    contains: Contains = None,
    limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100_000,
    offset: Offset = 0,
) -> Response:
    with ctx.db.reading() as session:
        hunt = hunts.get(session, hunt_id)
        every = results.rows(session, hunt, found=found, contains=contains)
    rows = every[offset : offset + limit]
    name = f"hunt-{hunt_id}"
    if format == "csv":
        return _download(results.csv_lines(rows), "text/csv; charset=utf-8", f"{name}.csv")
    if format == "ndjson":
        return _download(results.ndjson_lines(rows), "application/x-ndjson", f"{name}.ndjson")
    body: s.Page[s.HuntStationOut] = s.Page(
        items=[s.HuntStationOut(**r.as_dict()) for r in rows],
        total=len(every),
        limit=limit,
        offset=offset,
    )
    return Response(body.model_dump_json(), media_type="application/json")


def _download(lines: Iterator[str] | Iterator[bytes], media: str, filename: str) -> Response:
    return StreamingResponse(
        lines,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
