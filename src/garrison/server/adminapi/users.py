from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx
from garrison.server.adminapi.inputs import Limit, Offset, UtcTime
from garrison.server.audit import service as audit
from garrison.server.options import actions as option_actions
from garrison.server.options import service as options
from garrison.server.users import actions
from garrison.server.users import service as users

router = APIRouter()


@router.get("/users", response_model=list[s.UserOut], tags=["users"])
def list_users(actor: Admin, ctx: Ctx) -> list[s.UserOut]:
    with ctx.db.reading() as session:
        return [s.UserOut.model_validate(u) for u in users.list_users(session)]


@router.post("/users", response_model=s.UserOut, status_code=201, tags=["users"])
def create_user(body: s.UserIn, actor: Admin, ctx: Ctx) -> s.UserOut:
    user = actions.create_user(ctx.db, actor, body.username, body.password, body.role)
    return s.UserOut.model_validate(user)


@router.patch("/users/{username}", response_model=s.UserOut, tags=["users"])
def update_user(username: str, body: s.UserPatch, actor: Admin, ctx: Ctx) -> s.UserOut:
    user = actions.update_user(
        ctx.db, actor, username, role=body.role, password=body.password, disabled=body.disabled
    )
    return s.UserOut.model_validate(user)


@router.delete("/users/{username}", status_code=204, tags=["users"])
def delete_user(username: str, actor: Admin, ctx: Ctx) -> None:
    actions.delete_user(ctx.db, actor, username)


@router.get("/audit", response_model=list[s.AuditOut], tags=["audit"])
def list_audit(
    actor: Admin,
    ctx: Ctx,
    user: str | None = None,
    action: str | None = None,
    since: UtcTime | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[s.AuditOut]:
    with ctx.db.reading() as session:
        rows = audit.search(
            session, actor=user, action=action, since=since, limit=limit, offset=offset
        )
        return [s.AuditOut.model_validate(e) for e in rows]


@router.get("/settings", response_model=dict[str, int], tags=["settings"])
def get_settings(actor: Admin, ctx: Ctx) -> dict[str, int]:
    with ctx.db.reading() as session:
        return options.get_all(session)


@router.patch(
    "/settings",
    response_model=dict[str, int],
    tags=["settings"],
    summary="Change run-time settings: "
    + ", ".join(f"{k} ({v.minimum}-{v.maximum}, {v.help})" for k, v in options.OPTIONS.items()),
)
def patch_settings(
    actor: Admin, ctx: Ctx, body: Annotated[dict[str, Any], Body()]
) -> dict[str, int]:
    return option_actions.update_settings(ctx.db, actor, body)
