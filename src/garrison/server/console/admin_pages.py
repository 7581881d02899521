"""Users and roles, the audit log and the run-time settings: admins only, as in the admin
API, through ``users.actions`` and ``options.actions``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from garrison.common.vocabulary import Role
from garrison.server.adminapi import schemas as s
from garrison.server.audit import service as audit
from garrison.server.console import paging, web
from garrison.server.console.web import Form, Who
from garrison.server.errors import GarrisonError
from garrison.server.options import actions as option_actions
from garrison.server.options import service as options
from garrison.server.users import actions
from garrison.server.users import service as users

ROLES = [(r.value, r.value) for r in Role]


def _users(request: Request, who: Who, form: Form, status: int = 200) -> Response:
    with web.ctx_of(request).db.reading() as session:
        rows = users.list_users(session)
    return web.render(request, "users.html", who, status=status, form=form, users=rows, roles=ROLES)


@web.view(Role.ADMIN)
def users_list(request: Request, who: Who, form: Form) -> Response:
    return _users(request, who, form)


@web.view(Role.ADMIN)
def user_create(request: Request, who: Who, form: Form) -> Response:
    body = web.validate(
        s.UserIn,
        {
            "username": form.get("username"),
            "password": form.get("password"),
            "role": form.get("role"),
        },
        form,
    )
    if body is None:
        return _users(request, who, form, 422)
    try:
        actions.create_user(
            web.ctx_of(request).db, who.actor, body.username, body.password, body.role
        )
    except GarrisonError as exc:
        web.failed(form, exc)
        return _users(request, who, form, 422)
    return web.redirect(request, "/users")


@web.view(Role.ADMIN)
def user_update(request: Request, who: Who, form: Form) -> Response:
    username = str(request.path_params["username"])[:64]
    change: dict[str, Any] = {}
    if form.get("role"):
        change["role"] = form.get("role")
    if form.get("disabled") in ("yes", "no"):
        change["disabled"] = form.get("disabled") == "yes"
    body = web.validate(s.UserPatch, change, form)
    if body is None:
        return _users(request, who, form, 422)
    try:
        actions.update_user(
            web.ctx_of(request).db, who.actor, username, role=body.role, disabled=body.disabled
        )
    except GarrisonError as exc:
        web.failed(form, exc)
        return _users(request, who, form, 409)
    return web.redirect(request, "/users")


@web.view(Role.ADMIN)
def audit_log(request: Request, who: Who, form: Form) -> Response:
    q = request.query_params
    offset = paging.offset_of(request)
    with web.ctx_of(request).db.reading() as session:
        rows = audit.search(
            session,
            actor=q.get("user", "")[:64] or None,
            action=q.get("action", "")[:64] or None,
            limit=paging.PAGE_SIZE + 1,
            offset=offset,
        )
    more = len(rows) > paging.PAGE_SIZE
    rows = rows[: paging.PAGE_SIZE]
    # The audit read has no count: "total" is only what is known to exist so far.
    page = paging.page(request, offset, len(rows), offset + len(rows) + (1 if more else 0))
    return web.render(request, "audit.html", who, entries=rows, page=page, query=q)


def _settings(request: Request, who: Who, form: Form, status: int = 200) -> Response:
    with web.ctx_of(request).db.reading() as session:
        values = options.get_all(session)
    return web.render(
        request,
        "settings.html",
        who,
        status=status,
        form=form,
        values=values,
        specs=options.OPTIONS,
        settings=web.ctx_of(request).settings,
    )


@web.view(Role.ADMIN)
def settings_page(request: Request, who: Who, form: Form) -> Response:
    return _settings(request, who, form)


@web.view(Role.ADMIN)
def settings_save(request: Request, who: Who, form: Form) -> Response:
    changes: dict[str, Any] = {}
    for key in options.OPTIONS:
        raw = form.get(key)
        if raw != "":
            changes[key] = int(raw) if raw.lstrip("-").isdigit() and len(raw) < 18 else raw
    try:
        option_actions.update_settings(web.ctx_of(request).db, who.actor, changes)
    except GarrisonError as exc:
        web.failed(form, exc)
        return _settings(request, who, form, 422)
    return web.redirect(request, "/settings")
