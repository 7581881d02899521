"""Export targets: the list with each one's position and lag, create (checked by the admin
API's ``ExportTargetIn`` and the export slice's own rules), test-send."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from garrison.common.vocabulary import Role
from garrison.server.adminapi import schemas as s
from garrison.server.console import web
from garrison.server.console.web import Form, Who
from garrison.server.errors import GarrisonError, InvalidInputError
from garrison.server.export import actions
from garrison.server.export import service as targets

FORMATS = ["eset-json", "leef", "leef2", "cef"]
TRANSPORTS = ["udp", "tcp", "tls", "relp", "file", "http"]


def _page(
    request: Request, who: Who, form: Form, status: int = 200, sent: str = "", failed: str = ""
) -> Response:
    ctx = web.ctx_of(request)
    with ctx.db.reading() as session:
        views = targets.views(session, targets.list_all(session))
    return web.render(
        request,
        "exports.html",
        who,
        status=status,
        form=form,
        views=views,
        formats=[(f, f) for f in FORMATS],
        transports=[(t, t) for t in TRANSPORTS],
        sent=sent,
        failed=failed,
    )


@web.view(Role.VIEWER)
def exports_list(request: Request, who: Who, form: Form) -> Response:
    return _page(request, who, form)


@web.view(Role.ADMIN)
def export_create(request: Request, who: Who, form: Form) -> Response:
    port = form.get("port", "0") or "0"
    data: dict[str, Any] = {
        "name": form.get("name"),
        "format": form.get("format"),
        "transport": form.get("transport"),
        "host": form.get("host"),
        "port": int(port) if port.isdigit() and len(port) < 8 else port,
        "path": form.get("path"),
        "url": form.get("url"),
        "enabled": form.get("enabled", "on") == "on",
        "start_at": form.get("start_at", "now"),
    }
    body = web.validate(s.ExportTargetIn, data, form)
    if body is None:
        return _page(request, who, form, 422)
    ctx = web.ctx_of(request)
    try:
        actions.create_target(
            ctx.db,
            ctx.exports.policy,
            who.actor,
            body.name,
            body.format,
            body.transport,
            host=body.host,
            port=body.port,
            path=body.path,
            url=body.url,
            options=body.options,
            enabled=body.enabled,
            start_at=body.start_at,
        )
    except GarrisonError as exc:
        web.failed(form, exc)
        return _page(request, who, form, 422)
    return web.redirect(request, "/exports")


@web.view(Role.ADMIN)
def export_test(request: Request, who: Who, form: Form) -> Response:
    raw = str(request.path_params["target_id"])
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInputError("target_id: not an id", field="target_id")
    ctx = web.ctx_of(request)
    try:
        message = actions.send_test_event(ctx.db, ctx.exports.policy, int(raw))
    except GarrisonError as exc:
        return _page(request, who, Form(), 502, failed=exc.message)
    return _page(request, who, Form(), sent=message.decode("utf-8", errors="replace"))
