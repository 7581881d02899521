"""Alerts: triage (filter, acknowledge one or a selection), linked to station and events.
Assigning and commenting are not in the server's alert model yet (see docs/console.md)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from garrison.common.vocabulary import Role
from garrison.server.adminapi import schemas as s
from garrison.server.alerts import actions
from garrison.server.alerts import service as alerts
from garrison.server.console import paging, web
from garrison.server.console.web import Form, Who
from garrison.server.errors import GarrisonError

ACKNOWLEDGED = {"yes": True, "no": False}


def _page(request: Request, who: Who, form: Form, status: int = 200) -> Response:
    ctx = web.ctx_of(request)
    q = request.query_params
    offset = paging.offset_of(request)
    station = q.get("station_id", "")
    with ctx.db.reading() as session:
        rows, total = alerts.search(
            session,
            station_id=int(station) if station.isdigit() and len(station) < 18 else None,
            threat=q.get("threat", "")[:255] or None,
            acknowledged=ACKNOWLEDGED.get(q.get("acknowledged", "no")),
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
    )


@web.view(Role.VIEWER)
def alerts_list(request: Request, who: Who, form: Form) -> Response:
    return _page(request, who, form)


@web.view(Role.OPERATOR)
def acknowledge(request: Request, who: Who, form: Form) -> Response:
    ids = [int(v) if v.isdigit() and len(v) < 18 else v for v in form.lists.get("alert_ids", [])]
    body = web.validate(s.AckIn, {"alert_ids": ids}, form)
    if body is None:
        return _page(request, who, form, 422)
    try:
        actions.acknowledge(web.ctx_of(request).db, who.actor, body.alert_ids)
    except GarrisonError as exc:
        web.failed(form, exc)
        return _page(request, who, form, 409)
    back = form.get("back")
    return web.redirect(request, back if back.startswith("/alerts") else "/alerts")
