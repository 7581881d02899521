from __future__ import annotations

from fastapi import APIRouter, Request

from garrison.server.adminapi import convert
from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx
from garrison.server.enrollment import actions, install_command
from garrison.server.enrollment import service as enrollment

router = APIRouter(prefix="/enrollment-keys", tags=["enrollment keys"])


@router.post(
    "",
    response_model=s.KeyOut,
    status_code=201,
    summary="Create an enrollment key (the full key is shown in this answer only)",
)
def create_key(body: s.KeyIn, actor: Admin, ctx: Ctx) -> s.KeyOut:
    key, text = actions.create_key(ctx.db, actor, body.uses, body.expires_in, body.description)
    return convert.key(key, text)


@router.get("", response_model=list[s.KeyOut])
def list_keys(actor: Admin, ctx: Ctx, active: bool = False) -> list[s.KeyOut]:
    with ctx.db.reading() as session:
        return [convert.key(k) for k in enrollment.list_keys(session, include_inactive=not active)]


@router.delete("/{ref}", response_model=s.KeyOut, summary="Revoke a key (by id or full key text)")
def revoke_key(ref: str, actor: Admin, ctx: Ctx) -> s.KeyOut:
    return convert.key(actions.revoke_key(ctx.db, actor, ref))


@router.get(
    "/{ref}/install-command",
    response_model=s.InstallCommandOut,
    summary="The one-line agent install for a key (by id, or full key text to include it)",
)
def get_install_command(ref: str, request: Request, actor: Admin, ctx: Ctx) -> s.InstallCommandOut:
    server_url = install_command.server_url(ctx.settings.public_url, str(request.base_url))
    with ctx.db.reading() as session:
        key = enrollment.find_key(session, ref)
        made = install_command.for_key(key, ref, server_url, ctx.settings.data_dir)
    return s.InstallCommandOut(
        command=made.command,
        server_url=made.server_url,
        ca_sha256=made.ca_sha256,
        key_included=made.key_included,
    )
