"""Enrollment keys (admins, as in the admin API): create (the key, its one-line install and
a ready-to-paste enrollment command are shown once), copy, revoke; each active key's
install command (with its first group only: keys are stored hashed)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from garrison.common.vocabulary import Role
from garrison.server.adminapi import schemas as s
from garrison.server.console import web
from garrison.server.console.web import Form, Who
from garrison.server.enrollment import actions, install_command
from garrison.server.enrollment import service as enrollment
from garrison.server.errors import GarrisonError


def _page(
    request: Request, who: Who, form: Form, status: int = 200, created: str | None = None
) -> Response:
    ctx = web.ctx_of(request)
    server = install_command.server_url(ctx.settings.public_url, str(request.base_url))
    with ctx.db.reading() as session:
        keys = [(k, enrollment.key_status(k)) for k in enrollment.list_keys(session)]
        new_key = enrollment.find_key(session, created) if created else None
    # Each active key's install command (by its first group: the key is stored hashed); the
    # new key's in full.  A CA file that cannot be read is said once, instead of commands.
    commands: dict[int, str] = {}
    problem = ""
    try:
        for k, key_status in keys:
            if key_status == "active":
                commands[k.id] = install_command.for_key(
                    k, None, server, ctx.settings.data_dir
                ).command
        installing = (
            install_command.for_key(new_key, created, server, ctx.settings.data_dir).command
            if new_key is not None
            else ""
        )
    except GarrisonError as exc:
        problem, installing = exc.message, ""
    return web.render(
        request,
        "keys.html",
        who,
        status=status,
        form=form,
        keys=keys,
        created=created,
        command=f"sudo garrison-agent -s {server} -t Enrollment -k {created}" if created else "",
        install=installing,
        commands=commands,
        install_problem=problem,
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
