from __future__ import annotations

import anyio
import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx, Viewer
from garrison.server.adminapi.inputs import Limit
from garrison.server.errors import InvalidInputError, MalformedRequestError
from garrison.server.procedures import actions
from garrison.server.procedures import service as procedures

router = APIRouter(prefix="/procedures", tags=["procedures"])
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


@router.get("", response_model=list[s.ProcedureOut])
def list_procedures(actor: Viewer, ctx: Ctx) -> list[s.ProcedureOut]:
    with ctx.db.reading() as session:
        return [s.ProcedureOut.model_validate(p) for p in procedures.list_all(session)]


@router.get(
    "/errors",
    response_model=list[s.ProcedureErrorOut],
    summary="Recent procedure failures (errors, budget exceeded), newest first",
)
def procedure_errors(
    actor: Viewer,
    ctx: Ctx,
    procedure: str | None = None,
    limit: Limit = 100,
) -> list[s.ProcedureErrorOut]:
    with ctx.db.reading() as session:
        rows = procedures.recent_errors(session, procedure, limit)
        return [s.ProcedureErrorOut.model_validate(e) for e in rows]


@router.get("/{event}", response_model=s.ProcedureOut)
def get_procedure(event: str, actor: Viewer, ctx: Ctx) -> s.ProcedureOut:
    with ctx.db.reading() as session:
        return s.ProcedureOut.model_validate(procedures.get(session, event))


@router.put(
    "/{event}",
    response_model=s.ProcedureOut,
    openapi_extra=LUA_BODY,
    summary="Set the Lua source of an event procedure (a new version)",
)
async def put_procedure(event: str, request: Request, actor: Admin, ctx: Ctx) -> s.ProcedureOut:
    source, enabled = await _source(request)

    procedure = await run_in_threadpool(
        actions.set_procedure, ctx.db, actor, event, source, enabled
    )
    return s.ProcedureOut.model_validate(procedure)


@router.delete("/{event}", status_code=204)
def delete_procedure(event: str, actor: Admin, ctx: Ctx) -> None:
    actions.delete_procedure(ctx.db, actor, event)


@router.post("/{event}/enable", response_model=s.ProcedureOut)
def enable_procedure(event: str, actor: Admin, ctx: Ctx) -> s.ProcedureOut:
    return s.ProcedureOut.model_validate(actions.set_enabled(ctx.db, actor, event, True))


@router.post("/{event}/disable", response_model=s.ProcedureOut)
def disable_procedure(event: str, actor: Admin, ctx: Ctx) -> s.ProcedureOut:
    return s.ProcedureOut.model_validate(actions.set_enabled(ctx.db, actor, event, False))


@router.get("/{event}/versions", response_model=list[s.ProcedureVersionOut])
def procedure_versions(event: str, actor: Viewer, ctx: Ctx) -> list[s.ProcedureVersionOut]:
    with ctx.db.reading() as session:
        return [s.ProcedureVersionOut.model_validate(v) for v in procedures.history(session, event)]


def _dry_run_slots(request: Request, size: int) -> anyio.CapacityLimiter:
    """Dry runs wait for a worker here, on the event loop, not in a thread each: a flood of
    them (hanging ones included) holds no more threads than there are workers."""
    slots: anyio.CapacityLimiter | None = getattr(request.app.state, "dry_run_slots", None)
    if slots is None:
        slots = anyio.CapacityLimiter(size)
        request.app.state.dry_run_slots = slots
    return slots


@router.post(
    "/{event}/test",
    response_model=s.ProcedureTestOut,
    summary="Dry run with the given args: its writes are shown, none is made",
)
async def test_procedure(
    event: str, body: s.ProcedureTestIn, request: Request, actor: Admin, ctx: Ctx
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
                actions.dry_run, runner, actor, event, body.args, body.source
            )
        finally:
            slots.release()
    else:
        busy = f"all {runner.pool.size} procedure workers were busy for {runner.limits.seconds:g} s"
        result = await run_in_threadpool(actions.dry_run_refused, runner, actor, event, busy)
    return s.ProcedureTestOut(
        result=result.value,
        error=result.error,
        logs=result.logs,
        writes=[s.ProcedureWriteOut(action=a.fn, args=a.args) for a in result.actions],
        elapsed_ms=round(result.elapsed * 1000, 3),
    )
