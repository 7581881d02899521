"""Hunts: the list with progress, a new hunt (one question, a target, an expiry), a hunt's
per-station results with its aggregate, stop, and the results as CSV.  The form is turned
into the admin API's ``HuntIn`` and goes through the same use case; the hunt's own checks
answer with the admin API's messages, shown beside the field they name."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from garrison.common.vocabulary import JobPriority, Role
from garrison.server.adminapi import schemas as s
from garrison.server.console import paging, web
from garrison.server.console.web import Form, Who
from garrison.server.errors import GarrisonError, InvalidInputError
from garrison.server.hunts import actions, results
from garrison.server.hunts import service as hunts
from garrison.server.hunts.models import Hunt

QUESTIONS = ("FindFile", "FindProcess", "CollectFile", "SearchEvents", "IocSweep", "RunScript")
CRITERIA = (
    ("sha256", "SHA-256 (FindFile, FindProcess)"),
    ("glob", "file name pattern (FindFile)"),
    ("yara", "YARA rule (FindFile)"),
    ("name", "process name (FindProcess)"),
    ("cmdline", "command line contains (FindProcess)"),
    ("path", "path (CollectFile, SearchEvents)"),
    ("hash", "hash (SearchEvents)"),
    ("process", "process (SearchEvents)"),
    ("user", "user (SearchEvents)"),
    ("host", "host (SearchEvents)"),
    ("ip", "IP address (SearchEvents)"),
    ("hashes", "hashes, one a line (IocSweep)"),
)
TARGETS = ("all", "group", "label", "os")
STATES = ("active", "stopped", "expired")
DEFAULT_EXPIRES_IN = 86400
# The form's field that shows a problem the hunt's checks name (``question.glob``...).
FIELD_OF = (
    # RunScript: an approved version of a script in the library (params.* from the library's
    # check, question.* from the question's own).
    (re.compile(r"^(question|params)\.script$"), "script"),
    (re.compile(r"^(question|params)\.sha256$"), "script_sha256"),
    (re.compile(r"^question\.timeout"), "script_timeout"),
    (re.compile(r"^question\.roots"), "roots"),
    (re.compile(r"^question\.max_depth"), "max_depth"),
    (re.compile(r"^question\.type"), "type"),
    (re.compile(r"^question"), "value"),
    (re.compile(r"^target"), "target_value"),
)


def _number(value: str) -> int | str:
    return int(value) if value.strip().isdigit() and len(value.strip()) < 18 else value


def question_of(form: Form) -> dict[str, Any]:
    """The admin API's question from the form's type, criterion and value."""
    kind = form.get("type")
    value = form.get("value")
    question: dict[str, Any] = {"type": kind}
    if kind == "RunScript":
        question["script"] = form.get("script")
        question["sha256"] = form.get("script_sha256")
        question["args"] = [line for line in value.splitlines() if line.strip()]  # one a line
        if form.get("script_timeout").strip():
            question["timeout"] = _number(form.get("script_timeout"))
        return question
    if kind == "CollectFile":
        question["path"] = value
    elif kind == "IocSweep":
        question["hashes"] = [h for h in re.split(r"[\s,]+", value) if h]
    else:
        question[form.get("criterion") or "sha256"] = value
    if kind == "FindFile":
        roots = [r.strip() for r in form.get("roots", "/").split(",") if r.strip()]
        question["roots"] = roots or ["/"]
        if form.get("max_depth").strip():
            question["max_depth"] = _number(form.get("max_depth"))
    return question


def target_of(form: Form) -> dict[str, Any]:
    kind = form.get("target", "all")
    return {"all": True} if kind == "all" else {kind: form.get("target_value")}


def _show(form: Form, exc: GarrisonError) -> None:
    name = exc.field or "form"
    if form.get("type") != "RunScript" and name.startswith("question.sha256"):
        name = "question"  # FindFile's and FindProcess's sha256 is the value field
    elif form.get("type") == "RunScript" and name.startswith("question.args"):
        name = "question"  # the arguments are the value field
    for pattern, field in FIELD_OF:
        if pattern.match(name):
            name = field
            break
    form.errors[name] = exc.message


def _list(request: Request, who: Who, form: Form, status: int = 200) -> Response:
    db = web.ctx_of(request).db
    offset = paging.offset_of(request)
    state = request.query_params.get("state", "")
    with db.reading() as session:
        rows, total = hunts.search(
            session,
            state_filter=state if state in STATES else None,
            limit=paging.PAGE_SIZE,
            offset=offset,
        )
        items = [(h, hunts.state(h), results.progress(session, h)) for h in rows]
    return web.render(
        request,
        "hunts.html",
        who,
        status=status,
        items=items,
        page=paging.page(request, offset, len(items), total),
        form=form,
        query=request.query_params,
        questions=[(q, q) for q in QUESTIONS],
        criteria=list(CRITERIA),
        targets=[(t, t) for t in TARGETS],
        priorities=[(str(p.value), p.name.lower()) for p in JobPriority],
        states=STATES,
        default_expires_in=DEFAULT_EXPIRES_IN,
    )


@web.view(Role.VIEWER)
def hunts_list(request: Request, who: Who, form: Form) -> Response:
    return _list(request, who, form)


@web.view(Role.OPERATOR)
def hunt_create(request: Request, who: Who, form: Form) -> Response:
    data = {
        "question": question_of(form),
        "target": target_of(form),
        "expires_in": _number(form.get("expires_in", str(DEFAULT_EXPIRES_IN))),
        "priority": _number(form.get("priority", str(int(JobPriority.MEDIUM)))),
    }
    body = web.validate(s.HuntIn, data, form)
    if body is None:
        return _list(request, who, form, 422)
    try:
        hunt = actions.create_hunt(
            web.ctx_of(request).db,
            who.actor,
            body.question,
            body.target,
            body.expires_in,
            body.priority,
        )
    except GarrisonError as exc:
        _show(form, exc)
        return _list(request, who, form, 422)
    return web.redirect(request, f"/hunts/{hunt.id}")


def _hunt_id(request: Request) -> int:
    raw = str(request.path_params["hunt_id"])
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInputError("hunt_id: not a hunt id", field="hunt_id")
    return int(raw)


def _found(request: Request) -> bool | None:
    return {"yes": True, "no": False}.get(request.query_params.get("found", ""))


def _rows(request: Request) -> tuple[Hunt, str, dict[str, int], list[results.StationRow]]:
    hunt_id = _hunt_id(request)
    contains = request.query_params.get("contains", "")[:4096] or None
    with web.ctx_of(request).db.reading() as session:
        hunt = hunts.get(session, hunt_id)
        rows = results.rows(session, hunt, found=_found(request), contains=contains)
        return hunt, hunts.state(hunt), results.progress(session, hunt), rows


@web.view(Role.VIEWER)
def hunt_detail(request: Request, who: Who, form: Form) -> Response:
    hunt, state, progress, rows = _rows(request)
    return web.render(
        request,
        "hunt.html",
        who,
        hunt=hunt,
        state=state,
        progress=progress,
        rows=rows[: paging.PAGE_SIZE * 4],
        shown_of=len(rows),
        aggregate=results.aggregate(rows),
        query=request.query_params,
        form=form,
    )


@web.view(Role.OPERATOR)
def hunt_stop(request: Request, who: Who, form: Form) -> Response:
    hunt_id = _hunt_id(request)
    actions.stop_hunt(web.ctx_of(request).db, who.actor, hunt_id)
    return web.redirect(request, f"/hunts/{hunt_id}")


@web.view(Role.VIEWER)
def hunt_csv(request: Request, who: Who, form: Form) -> Response:
    """Every per-station row (with the page's filters) as the admin API's CSV."""
    hunt, _, _, rows = _rows(request)
    return StreamingResponse(
        results.csv_lines(rows),
        media_type="text/csv; charset=utf-8",
        headers={
            **web.HEADERS,
            "Content-Disposition": f'attachment; filename="hunt-{hunt.id}.csv"',
        },
    )
