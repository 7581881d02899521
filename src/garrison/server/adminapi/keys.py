from __future__ import annotations

from fastapi import APIRouter

from garrison.server.adminapi import convert
from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx
from garrison.server.enrollment import actions
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
