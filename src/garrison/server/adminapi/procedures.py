"""/admin/v1/procedures (an event's procedures, one per set) and /admin/v1/procedure-sets."""

from __future__ import annotations

from typing import Annotated

import anyio
import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx, Viewer
from garrison.server.adminapi.inputs import Limit
from garrison.server.errors import InvalidInputError, MalformedRequestError
from garrison.server.procedures import actions
from garrison.server.procedures import service as procedures
from garrison.server.procedures.models import DEFAULT_SET, Procedure, ProcedureSet

events_router = APIRouter(prefix="/procedures", tags=["procedures"])
sets_router = APIRouter(prefix="/procedure-sets", tags=["procedures"])
router = APIRouter()
SetName = Annotated[
    str,
    Query(
        alias="set",
        max_length=200,
        description="the procedure set (default: the default set)",
    ),
]
OptionalSet = Annotated[
    str | None,
    Query(alias="set", max_length=200, description="only this procedure set"),
]


def _out(procedure: Procedure, in_set: ProcedureSet) -> s.ProcedureOut:
    return s.ProcedureOut(
        name=procedure.name,
        set_name=procedure.set_name,
        order=in_set.position,
        set_enabled=in_set.enabled,
        enabled=procedure.enabled,
        version=procedure.version,
        updated_at=procedure.updated_at,
        updated_by=procedure.updated_by,
        source=procedure.source,
    )


def _set_out(found: ProcedureSet, count: int) -> s.ProcedureSetOut:
    return s.ProcedureSetOut(
        name=found.name,
        order=found.position,
        enabled=found.enabled,
        procedures=count,
        updated_at=found.updated_at,
        updated_by=found.updated_by,
    )


LUA_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/plain": {"schema": {"type": "string", "description": "the Lua source"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"source": {"type": "string"}, "enabled": {"type": "boolean"}},
                    "required": ["source"],
                }
            },
        },
    }
}


async def _source(request: Request) -> tuple[str, bool]:
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequestError("the procedure source must be UTF-8 text") from None
    if "json" in request.headers.get("content-type", ""):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise MalformedRequestError("request body is not valid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("source"), str):
            raise InvalidInputError("a JSON body needs a string 'source'", field="source")
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise InvalidInputError("enabled must be a boolean", field="enabled")
        return data["source"], enabled
    if not text.strip():
        raise InvalidInputError("the procedure source is empty", field="source")
    return text, True


@events_router.get(
    "",
    response_model=list[s.ProcedureOut],
    summary="Every stored procedure: by event, then in set order",
)
def list_procedures(actor: Viewer, ctx: Ctx) -> list[s.ProcedureOut]:
    with ctx.db.reading() as session:
        return [_out(p, in_set) for p, in_set in procedures.list_all(session)]


@events_router.get(
    "/errors",
    response_model=list[s.ProcedureErrorOut],
    summary="Recent procedure failures (errors, budget exceeded), newest first",
)
def procedure_errors(
    actor: Viewer,
    ctx: Ctx,
    procedure: str | None = None,
    limit: Limit = 100,
    set_name: OptionalSet = None,
) -> list[s.ProcedureErrorOut]:
    with ctx.db.reading() as session:
        rows = procedures.recent_errors(session, procedure, limit, set_name)
        return [s.ProcedureErrorOut.model_validate(e) for e in rows]


@events_router.get(
    "/{event}",
    response_model=s.ProcedureChainOut,
    summary="An event's procedures with their sets, in set order",
)
def get_procedure(
    event: str, actor: Viewer, ctx: Ctx, set_name: OptionalSet = None
) -> s.ProcedureChainOut:
    with ctx.db.reading() as session:
        chain = procedures.chain(session, event)
        if set_name is not None:
            chosen = procedures.get(session, event, set_name)
        elif not chain:
            chosen = procedures.get(session, event)  # its 404
        else:
            chosen = next((p for p, _ in chain if p.set_name == DEFAULT_SET), chain[0][0])
        listed = [_out(p, in_set) for p, in_set in chain]
        (head,) = (item for item in listed if item.set_name == chosen.set_name)
        return s.ProcedureChainOut(**head.model_dump(), procedures=listed)


def _procedure_out(procedure: Procedure, ctx: Ctx) -> s.ProcedureOut:
    with ctx.db.reading() as session:
        return _out(procedure, procedures.get_set(session, procedure.set_name))


@events_router.put(
    "/{event}",
    response_model=s.ProcedureOut,
    openapi_extra=LUA_BODY,
    summary="Set the Lua source of an event procedure in a set (a new version)",
)
async def put_procedure(
    event: str, request: Request, actor: Admin, ctx: Ctx, set_name: SetName = DEFAULT_SET
) -> s.ProcedureOut:
    source, enabled = await _source(request)

    procedure = await run_in_threadpool(
        actions.set_procedure, ctx.db, actor, event, source, enabled, set_name
    )
    return await run_in_threadpool(_procedure_out, procedure, ctx)


@events_router.delete("/{event}", status_code=204)
def delete_procedure(event: str, actor: Admin, ctx: Ctx, set_name: SetName = DEFAULT_SET) -> None:
    actions.delete_procedure(ctx.db, actor, event, set_name)


@events_router.post("/{event}/enable", response_model=s.ProcedureOut)
def enable_procedure(
    event: str, actor: Admin, ctx: Ctx, set_name: SetName = DEFAULT_SET
) -> s.ProcedureOut:
    return _procedure_out(actions.set_enabled(ctx.db, actor, event, True, set_name), ctx)


@events_router.post("/{event}/disable", response_model=s.ProcedureOut)
def disable_procedure(
    event: str, actor: Admin, ctx: Ctx, set_name: SetName = DEFAULT_SET
) -> s.ProcedureOut:
    return _procedure_out(actions.set_enabled(ctx.db, actor, event, False, set_name), ctx)


@events_router.get("/{event}/versions", response_model=list[s.ProcedureVersionOut])
def procedure_versions(
    event: str, actor: Viewer, ctx: Ctx, set_name: SetName = DEFAULT_SET
) -> list[s.ProcedureVersionOut]:
    with ctx.db.reading() as session:
        return [
            s.ProcedureVersionOut.model_validate(v)
            for v in procedures.history(session, event, set_name)
        ]


def _dry_run_slots(request: Request, size: int) -> anyio.CapacityLimiter:
    """Dry runs wait for a worker here, on the event loop, not in a thread each: a flood of
    them (hanging ones included) holds no more threads than there are workers."""
    slots: anyio.CapacityLimiter | None = getattr(request.app.state, "dry_run_slots", None)
    if slots is None:
        slots = anyio.CapacityLimiter(size)
        request.app.state.dry_run_slots = slots
    return slots


@events_router.post(
    "/{event}/test",
    response_model=s.ProcedureTestOut,
    summary="Dry run with the given args (one set's procedure, or the event's whole chain): "
    "its writes are shown, none is made",
)
async def dry_run_procedure(
    event: str,
    body: s.ProcedureTestIn,
    request: Request,
    actor: Admin,
    ctx: Ctx,
    set_name: OptionalSet = None,
) -> s.ProcedureTestOut:
    runner = ctx.procedures
    slots = _dry_run_slots(request, runner.pool.size)
    acquired = False
    with anyio.move_on_after(runner.limits.seconds):
        await slots.acquire()
        acquired = True
    if acquired:
        try:
            result = await run_in_threadpool(
                actions.dry_run, runner, actor, event, body.args, body.source, set_name
            )
        finally:
            slots.release()
    else:
        busy = f"all {runner.pool.size} procedure workers were busy for {runner.limits.seconds:g} s"
        result = await run_in_threadpool(
            actions.dry_run_refused, runner, actor, event, busy, set_name
        )
    return s.ProcedureTestOut(
        result=result.value,
        error=result.error,
        logs=result.logs,
        writes=[s.ProcedureWriteOut(action=a.fn, args=a.args) for a in result.actions],
        elapsed_ms=round(result.elapsed * 1000, 3),
        answered_by=result.answered_by,
        chain=[
            s.ProcedureChainStepOut(
                set_name=step.set_name,
                order=step.order,
                version=step.version,
                called=step.called,
                skipped=step.skipped,
                result=step.value,
                error=step.error,
                logs=step.logs,
                writes=[s.ProcedureWriteOut(action=a.fn, args=a.args) for a in step.actions],
                elapsed_ms=round(step.elapsed * 1000, 3),
            )
            for step in result.chain
        ],
    )


# -- procedure sets ---------------------------------------------------------------------------


@sets_router.get("", response_model=list[s.ProcedureSetOut], summary="The sets, in order")
def list_sets(actor: Viewer, ctx: Ctx) -> list[s.ProcedureSetOut]:
    with ctx.db.reading() as session:
        counts = procedures.procedure_counts(session)
        return [
            _set_out(found, counts.get(found.name, 0)) for found in procedures.list_sets(session)
        ]


@sets_router.get("/{name}", response_model=s.ProcedureSetOut)
def get_set(name: str, actor: Viewer, ctx: Ctx) -> s.ProcedureSetOut:
    with ctx.db.reading() as session:
        found = procedures.get_set(session, name)
        return _set_out(found, procedures.procedure_counts(session).get(name, 0))


@sets_router.put(
    "/{name}",
    response_model=s.ProcedureSetOut,
    summary="Create a procedure set (order required) or change its order or enabled flag",
)
def put_set(name: str, body: s.ProcedureSetIn, actor: Admin, ctx: Ctx) -> s.ProcedureSetOut:
    view = actions.put_set(ctx.db, actor, name, body.order, body.enabled)
    return _set_out(view.set, view.procedures)


@sets_router.delete(
    "/{name}", status_code=204, summary="Delete a set and its procedures (not 'default')"
)
def delete_set(name: str, actor: Admin, ctx: Ctx) -> None:
    actions.delete_set(ctx.db, actor, name)


router.include_router(events_router)
router.include_router(sets_router)
