from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx, Viewer
from garrison.server.errors import InvalidInputError, MalformedRequestError
from garrison.server.procedures import service as procedures
from garrison.server.procedures.dispatcher import run_procedure
from garrison.server.procedures.models import Procedure, ProcedureError
from garrison.server.procedures.sandbox import Limits

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


def procedure_out(p: Procedure) -> s.ProcedureOut:
    return s.ProcedureOut(
        name=p.name,
        enabled=p.enabled,
        version=p.version,
        updated_at=p.updated_at,
        updated_by=p.updated_by,
        source=p.source,
    )


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
        return [procedure_out(p) for p in procedures.list_all(session)]


@router.get(
    "/errors",
    response_model=list[s.ProcedureErrorOut],
    summary="Recent procedure failures (errors, budget exceeded), newest first",
)
def procedure_errors(
    actor: Viewer,
    ctx: Ctx,
    procedure: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[s.ProcedureErrorOut]:
    query = select(ProcedureError).order_by(ProcedureError.id.desc()).limit(limit)
    if procedure:
        query = query.where(ProcedureError.procedure == procedure)
    with ctx.db.reading() as session:
        return [
            s.ProcedureErrorOut(
                id=e.id, procedure=e.procedure, event_seq=e.event_seq, error=e.error, at=e.at
            )
            for e in session.scalars(query)
        ]


@router.get("/{event}", response_model=s.ProcedureOut)
def get_procedure(event: str, actor: Viewer, ctx: Ctx) -> s.ProcedureOut:
    with ctx.db.reading() as session:
        return procedure_out(procedures.get(session, event))


@router.put(
    "/{event}",
    response_model=s.ProcedureOut,
    openapi_extra=LUA_BODY,
    summary="Set the Lua source of an event procedure (a new version)",
)
async def put_procedure(event: str, request: Request, actor: Admin, ctx: Ctx) -> s.ProcedureOut:
    source, enabled = await _source(request)

    def store() -> s.ProcedureOut:
        with ctx.db.transaction() as session:
            return procedure_out(procedures.put(session, actor, event, source, enabled))

    return await run_in_threadpool(store)


@router.delete("/{event}", status_code=204)
def delete_procedure(event: str, actor: Admin, ctx: Ctx) -> None:
    with ctx.db.transaction() as session:
        procedures.delete(session, actor, event)


@router.post("/{event}/enable", response_model=s.ProcedureOut)
def enable_procedure(event: str, actor: Admin, ctx: Ctx) -> s.ProcedureOut:
    with ctx.db.transaction() as session:
        return procedure_out(procedures.set_enabled(session, actor, event, True))


@router.post("/{event}/disable", response_model=s.ProcedureOut)
def disable_procedure(event: str, actor: Admin, ctx: Ctx) -> s.ProcedureOut:
    with ctx.db.transaction() as session:
        return procedure_out(procedures.set_enabled(session, actor, event, False))


@router.get("/{event}/versions", response_model=list[s.ProcedureVersionOut])
def procedure_versions(event: str, actor: Viewer, ctx: Ctx) -> list[s.ProcedureVersionOut]:
    with ctx.db.reading() as session:
        return [
            s.ProcedureVersionOut(
                version=v.version, created_at=v.created_at, created_by=v.created_by, source=v.source
            )
            for v in procedures.history(session, event)
        ]


@router.post(
    "/{event}/test",
    response_model=s.ProcedureTestOut,
    summary="Dry run with the given args: nothing it does is kept",
)
def test_procedure(
    event: str, body: s.ProcedureTestIn, actor: Admin, ctx: Ctx
) -> s.ProcedureTestOut:
    with ctx.db.sessions() as session:
        session.begin()
        try:
            source = body.source
            if source is None:
                source = procedures.get(session, event).source
            else:
                procedures.check_name(event)
            result = run_procedure(
                session, event, source, body.args, None, Limits.from_settings(ctx.settings)
            )
        finally:
            session.rollback()  # a dry run: the procedure's actions and errors are not kept
    return s.ProcedureTestOut(
        result=result.value,
        error=result.error,
        logs=result.logs,
        elapsed_ms=round(result.elapsed * 1000, 3),
    )
