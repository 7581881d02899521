"""Enrollment keys (admins, as in the admin API): create (the key and a ready-to-paste
enrollment command are shown once), copy, revoke."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from garrison.common.vocabulary import Role
from garrison.server.adminapi import schemas as s
from garrison.server.console import web
from garrison.server.console.web import Form, Who
from garrison.server.enrollment import actions
from garrison.server.enrollment import service as enrollment
from garrison.server.errors import GarrisonError


def _page(
    request: Request, who: Who, form: Form, status: int = 200, created: str | None = None
) -> Response:
    ctx = web.ctx_of(request)
    with ctx.db.reading() as session:
        keys = [(k, enrollment.key_status(k)) for k in enrollment.list_keys(session)]
    server = str(request.base_url).rstrip("/")
    return web.render(
        request,
        "keys.html",
        who,
        status=status,
        form=form,
        keys=keys,
        created=created,
        command=f"sudo garrison-agent -s {server} -t Enrollment -k {created}" if created else "",
    )


@web.view(Role.ADMIN)
def keys_list(request: Request, who: Who, form: Form) -> Response:
    return _page(request, who, form)


def _int(value: str) -> int | str:
    return int(value) if value.strip().isdigit() and len(value) < 18 else value


@web.view(Role.ADMIN)
def key_create(request: Request, who: Who, form: Form) -> Response:
    hours = form.get("expires_hours", "168")
    seconds: int | str = int(float(hours) * 3600) if _is_number(hours) else hours
    body = web.validate(
        s.KeyIn,
        {
            "uses": _int(form.get("uses", "1")),
            "expires_in": seconds,
            "description": form.get("description"),
        },
        form,
    )
    if body is None:
        if "expires_in" in form.errors:
            form.errors["expires_hours"] = form.errors.pop("expires_in")
        return _page(request, who, form, 422)
    try:
        _, text = actions.create_key(
            web.ctx_of(request).db, who.actor, body.uses, body.expires_in, body.description
        )
    except GarrisonError as exc:
        web.failed(form, exc)
        return _page(request, who, form, 422)
    # Shown in this answer only: the key is stored hashed.
    return _page(request, who, Form(), 201, created=text)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return len(value) < 18


@web.view(Role.ADMIN)
def key_revoke(request: Request, who: Who, form: Form) -> Response:
    ref = str(request.path_params["key_id"])[:64]
    actions.revoke_key(web.ctx_of(request).db, who.actor, ref)
    return web.redirect(request, "/keys")
