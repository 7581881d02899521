"""Alerts: triage (filter; acknowledge, assign one or a selection; comment), linked to the
station and its events.  Each change goes through the admin API's use case and schema."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from garrison.common.vocabulary import Role
from garrison.server.adminapi import schemas as s
from garrison.server.alerts import actions
from garrison.server.alerts import service as alerts
from garrison.server.console import paging, web
from garrison.server.console.web import Form, Who
from garrison.server.errors import GarrisonError, InvalidInputError
from garrison.server.users import service as users

ACKNOWLEDGED = {"yes": True, "no": False}


def _id(value: str) -> int | str:
    """A form's id as an int when it is one (the schema names what else it is)."""
    return int(value) if value.isdigit() and len(value) < 18 else value


def _assignees(request: Request) -> list[tuple[str, str]]:
    """The assignee choices: nobody, then every enabled user."""
    with web.ctx_of(request).db.reading() as session:
        names = [u.username for u in users.list_users(session) if not u.disabled]
    return [("", "nobody (unassign)"), *((n, n) for n in names)]


def _page(request: Request, who: Who, form: Form, status: int = 200) -> Response:
    ctx = web.ctx_of(request)
    q = request.query_params
    offset = paging.offset_of(request)
    station = q.get("station_id", "")
    assigned = q.get("assigned_to", "any")[:64]
    assignee = {"any": None, "": None, "none": ""}.get(assigned, assigned)
    with ctx.db.reading() as session:
        rows, total = alerts.search(
            session,
            station_id=int(station) if station.isdigit() and len(station) < 18 else None,
            threat=q.get("threat", "")[:255] or None,
            acknowledged=ACKNOWLEDGED.get(q.get("acknowledged", "no")),
            assigned_to=assignee,
            limit=paging.PAGE_SIZE,
            offset=offset,
        )
    template = "alerts_table.html" if web.is_htmx(request) else "alerts.html"
    return web.render(
        request,
        template,
        who,
        status=status,
        alerts=rows,
        page=paging.page(request, offset, len(rows), total),
        query=q,
        form=form,
        assignees=_assignees(request) if who.can(Role.OPERATOR) else [],
    )


def _back(request: Request, form: Form) -> Response:
    back = form.get("back")
    return web.redirect(request, back if back.startswith("/alerts") else "/alerts")


@web.view(Role.VIEWER)
def alerts_list(request: Request, who: Who, form: Form) -> Response:
    return _page(request, who, form)


@web.view(Role.OPERATOR)
def acknowledge(request: Request, who: Who, form: Form) -> Response:
    ids = [_id(v) for v in form.lists.get("alert_ids", [])]
    body = web.validate(s.AckIn, {"alert_ids": ids}, form)
    if body is None:
        return _page(request, who, form, 422)
    try:
        actions.acknowledge(web.ctx_of(request).db, who.actor, body.alert_ids)
    except GarrisonError as exc:
        web.failed(form, exc)
        return _page(request, who, form, 409)
    return _back(request, form)


@web.view(Role.OPERATOR)
def assign(request: Request, who: Who, form: Form) -> Response:
    """Assign the selected alerts (``alert_ids``) to ``assignee``; empty unassigns them."""
    ids = [_id(v) for v in form.lists.get("alert_ids", [])]
    data: dict[str, Any] = {"alert_ids": ids, "assignee": form.get("assignee") or None}
    body = web.validate(s.AssignIn, data, form)
    if body is None:
        return _page(request, who, form, 422)
    try:
        actions.assign(web.ctx_of(request).db, who.actor, body.alert_ids, body.assignee)
    except GarrisonError as exc:
        web.failed(form, exc)
        return _page(request, who, form, 409 if exc.field is None else 422)
    return _back(request, form)


def _alert_id(request: Request) -> int:
    raw = str(request.path_params["alert_id"])
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInputError("alert_id: not an alert id", field="alert_id")
    return int(raw)


def _detail(request: Request, who: Who, form: Form, status: int = 200) -> Response:
    alert_id = _alert_id(request)
    with web.ctx_of(request).db.reading() as session:
        alert = alerts.get(session, alert_id)
        notes = alerts.comments(session, alert_id)
    return web.render(
        request,
        "alert.html",
        who,
        status=status,
        alert=alert,
        comments=notes,
        form=form,
        assignees=_assignees(request) if who.can(Role.OPERATOR) else [],
    )


@web.view(Role.VIEWER)
def alert_detail(request: Request, who: Who, form: Form) -> Response:
    return _detail(request, who, form)


@web.view(Role.OPERATOR)
def alert_post(request: Request, who: Who, form: Form) -> Response:
    """The alert page's forms: ``do`` = comment, assign or acknowledge."""
    alert_id = _alert_id(request)
    db = web.ctx_of(request).db
    do = form.get("do")
    try:
        if do == "comment":
            comment = web.validate(s.CommentIn, {"body": form.get("body")}, form)
            if comment is None:
                return _detail(request, who, form, 422)
            actions.comment(db, who.actor, alert_id, comment.body)
        elif do == "assign":
            data = {"alert_ids": [alert_id], "assignee": form.get("assignee") or None}
            body = web.validate(s.AssignIn, data, form)
            if body is None:
                return _detail(request, who, form, 422)
            actions.assign(db, who.actor, body.alert_ids, body.assignee)
        elif do == "acknowledge":
            actions.acknowledge(db, who.actor, [alert_id])
        else:
            form.errors["form"] = "do must be one of comment, assign, acknowledge"
            return _detail(request, who, form, 422)
    except GarrisonError as exc:
        web.failed(form, exc)
        return _detail(request, who, form, 409 if exc.field is None else 422)
    return web.redirect(request, f"/alerts/{alert_id}")
