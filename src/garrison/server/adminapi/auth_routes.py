from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Ctx, Viewer
from garrison.server.errors import NotAuthenticatedError
from garrison.server.users import actions

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/login",
    response_model=s.LoginOut,
    summary="Exchange a password for a token",
    description="Failed logins are limited per client address and per account: past the "
    "limit the answer is 429 with a Retry-After header (see docs/security.md).",
    responses={429: {"description": "too many failed logins; retry after Retry-After seconds"}},
)
def login(body: s.LoginIn, request: Request, ctx: Ctx) -> s.LoginOut:
    address = request.client.host if request.client else ""
    done = actions.login(
        ctx.db,
        body.username,
        body.password,
        address,
        ctx.settings.admin_token_ttl_seconds,
        ctx.login_guard,
    )
    return s.LoginOut(
        token=done.token,
        expires_at=done.expires_at,
        username=done.user.username,
        role=done.user.role,
    )


@router.post("/logout", status_code=204, summary="Revoke the token of this request")
def logout(
    actor: Viewer,
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer())],
) -> None:
    if credentials is None:
        raise NotAuthenticatedError("no token")
    actions.logout(ctx.db, credentials.credentials)


@router.get("/me", response_model=s.Me)
def me(actor: Viewer) -> s.Me:
    return s.Me(username=actor.username, role=actor.role)
