"""Lua procedures: the list with recorded failures, and an event's editor: syntax check,
save (a new version; the same rules as PUT /admin/v1/procedures), dry run against a sample
event of that type, versions with a diff, enable and disable."""

from __future__ import annotations

import difflib
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from garrison.common.catalogue import CATALOGUE
from garrison.common.catalogue_types import EventType
from garrison.common.vocabulary import Role
from garrison.server.console import web
from garrison.server.console.web import Form, Who
from garrison.server.errors import GarrisonError, InvalidInputError, NotFoundError
from garrison.server.events import service as events
from garrison.server.procedures import actions
from garrison.server.procedures import service as procedures
from garrison.server.procedures.models import DEFAULT_SET
from garrison.server.procedures.sandbox import check_syntax

NEW_SOURCE = "local args = ...\n-- garrison.log('seen ' .. tostring(args.id))\nreturn nil\n"
SAMPLES = {
    "integer": 1,
    "string": "example",
    "timestamp": "2026-01-01T00:00:00Z",
    "sha1": "0" * 40,
    "sha256": "0" * 64,
    "md5": "0" * 32,
    "mac": "00:00:00:00:00:00",
}


def sample_args(session: Any, declared: EventType) -> dict[str, Any]:
    """The newest stored event of that type, else one made from the catalogue's fields."""
    rows, _ = events.search(session, events.EventQuery(types=(declared.name,)), 1, 0)
    if rows and isinstance(rows[0].data, dict):
        return dict(rows[0].data)
    return {f.name: SAMPLES.get(f.type, "example") for f in declared.fields}


@web.view(Role.VIEWER)
def procedures_list(request: Request, who: Who, form: Form) -> Response:
    ctx = web.ctx_of(request)
    with ctx.db.reading() as session:
        stored = procedures.list_all(session)
        failures = procedures.recent_errors(session, None, 50)
        sets = procedures.list_sets(session)
    names = sorted(e.procedure for e in CATALOGUE.values() if e.procedure)
    return web.render(
        request,
        "procedures.html",
        who,
        stored=stored,
        failures=failures,
        sets=sets,
        names=sorted(set(names)),
    )


def _event(request: Request) -> EventType:
    name = str(request.path_params["event"])[:64]
    declared = CATALOGUE.get(name)
    if declared is None or not declared.procedure:
        raise NotFoundError(f"no event procedure {name!r}", field="event")
    return declared


def _set(request: Request, form: Form) -> str:
    return (form.get("set") or request.query_params.get("set") or DEFAULT_SET)[:200]


def _editor(
    request: Request,
    who: Who,
    form: Form,
    status: int = 200,
    source: str | None = None,
    result: actions.DryRun | None = None,
    notice: str = "",
) -> Response:
    ctx = web.ctx_of(request)
    declared = _event(request)
    set_name = _set(request, form)
    with ctx.db.reading() as session:
        try:
            current = procedures.get(session, declared.name, set_name)
        except NotFoundError:
            current = None
        history = procedures.history(session, declared.name, set_name) if current else []
        failures = procedures.recent_errors(session, declared.name, 20, set_name)
        sample = sample_args(session, declared)
        sets = procedures.list_sets(session)
    diff = ""
    if len(history) >= 2:
        newer, older = history[0], history[1]
        diff = "".join(
            difflib.unified_diff(
                older.source.splitlines(keepends=True),
                newer.source.splitlines(keepends=True),
                f"version {older.version}",
                f"version {newer.version}",
            )
        )
    shown = source if source is not None else (current.source if current else NEW_SOURCE)
    return web.render(
        request,
        "procedure.html",
        who,
        status=status,
        form=form,
        event=declared,
        set_name=set_name,
        sets=sets,
        current=current,
        history=history,
        diff=diff,
        failures=failures,
        source=shown,
        args=form.get("args") or orjson.dumps(sample, option=orjson.OPT_INDENT_2).decode(),
        result=result,
        notice=notice,
    )


@web.view(Role.VIEWER)
def procedure_editor(request: Request, who: Who, form: Form) -> Response:
    return _editor(request, who, form)


@web.view(Role.ADMIN)
def procedure_post(request: Request, who: Who, form: Form) -> Response:
    """One form, three buttons: ``check`` the syntax, ``save`` a version, ``dry-run``."""
    ctx = web.ctx_of(request)
    declared = _event(request)
    source = form.get("source")
    what = form.get("do", "save")
    if what == "check":
        problem = check_syntax(source, declared.name)
        if problem:
            form.errors["source"] = problem
            return _editor(request, who, form, 422, source=source)
        return _editor(request, who, form, source=source, notice="The syntax is correct.")
    if what == "dry-run":
        try:
            args = orjson.loads(form.get("args") or "{}")
        except orjson.JSONDecodeError:
            form.errors["args"] = "the sample event is not valid JSON"
            return _editor(request, who, form, 422, source=source)
        if not isinstance(args, dict):
            form.errors["args"] = "the sample event must be a JSON object"
            return _editor(request, who, form, 422, source=source)
        result = actions.dry_run(
            ctx.procedures, who.actor, declared.name, args, source, _set(request, form)
        )
        return _editor(request, who, form, source=source, result=result)
    if what not in ("save", "enable", "disable"):
        raise InvalidInputError("do must be check, save, dry-run, enable or disable", field="do")
    try:
        if what == "save":
            actions.set_procedure(
                ctx.db, who.actor, declared.name, source, True, _set(request, form)
            )
        else:
            actions.set_enabled(
                ctx.db, who.actor, declared.name, what == "enable", _set(request, form)
            )
    except GarrisonError as exc:
        web.failed(form, exc)
        return _editor(request, who, form, 422, source=source)
    query = f"?set={_set(request, form)}" if _set(request, form) != DEFAULT_SET else ""
    return web.redirect(request, f"/procedures/{declared.name}{query}")
