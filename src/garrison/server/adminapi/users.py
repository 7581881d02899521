from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx
from garrison.server.audit import service as audit
from garrison.server.errors import InvalidInputError
from garrison.server.options import service as options
from garrison.server.users import service as users
from garrison.server.users.models import User

router = APIRouter()


def _user(u: User) -> s.UserOut:
    return s.UserOut(
        id=u.id, username=u.username, role=u.role, disabled=u.disabled, created_at=u.created_at
    )


@router.get("/users", response_model=list[s.UserOut], tags=["users"])
def list_users(actor: Admin, ctx: Ctx) -> list[s.UserOut]:
    with ctx.db.reading() as session:
        return [_user(u) for u in users.list_users(session)]


@router.post("/users", response_model=s.UserOut, status_code=201, tags=["users"])
def create_user(body: s.UserIn, actor: Admin, ctx: Ctx) -> s.UserOut:
    with ctx.db.transaction() as session:
        return _user(users.create_user(session, actor, body.username, body.password, body.role))


@router.patch("/users/{username}", response_model=s.UserOut, tags=["users"])
def update_user(username: str, body: s.UserPatch, actor: Admin, ctx: Ctx) -> s.UserOut:
    with ctx.db.transaction() as session:
        return _user(
            users.update_user(
                session,
                actor,
                username,
                role=body.role,
                password=body.password,
                disabled=body.disabled,
            )
        )


@router.delete("/users/{username}", status_code=204, tags=["users"])
def delete_user(username: str, actor: Admin, ctx: Ctx) -> None:
    with ctx.db.transaction() as session:
        users.delete_user(session, actor, username)


@router.get("/audit", response_model=list[s.AuditOut], tags=["audit"])
def list_audit(
    actor: Admin,
    ctx: Ctx,
    user: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[s.AuditOut]:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    with ctx.db.reading() as session:
        return [
            s.AuditOut(
                id=e.id,
                at=e.at,
                actor=e.actor,
                action=e.action,
                target=e.target,
                details=e.details,
                address=e.address,
            )
            for e in audit.search(
                session, actor=user, action=action, since=since, limit=limit, offset=offset
            )
        ]


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
    if not body:
        raise InvalidInputError("give at least one setting to change")
    with ctx.db.transaction() as session:
        values = options.set_many(session, body)
        audit.record(session, actor, "settings.update", "", **body)
        return values
