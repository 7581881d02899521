from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Ctx, Viewer
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.errors import NotAuthenticatedError
from garrison.server.users import service as users

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", response_model=s.LoginOut, summary="Exchange a password for a token")
def login(body: s.LoginIn, request: Request, ctx: Ctx) -> s.LoginOut:
    address = request.client.host if request.client else ""
    try:
        with ctx.db.transaction() as session:
            user, token, expires = users.login(
                session, body.username, body.password, ctx.settings.admin_token_ttl_seconds
            )
            return s.LoginOut(
                token=token, expires_at=expires, username=user.username, role=user.role
            )
    except NotAuthenticatedError:
        # The failed attempt is audited in its own transaction, since the login's rolled back.
        with ctx.db.transaction() as session:
            audit.record(session, Actor(body.username[:64], "", address), "auth.login_failed")
        raise


@router.post("/logout", status_code=204, summary="Revoke the token of this request")
def logout(
    actor: Viewer,
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer())],
) -> None:
    if credentials is None:
        raise NotAuthenticatedError("no token")
    with ctx.db.transaction() as session:
        users.logout(session, credentials.credentials)


@router.get("/me", response_model=s.Me)
def me(actor: Viewer) -> s.Me:
    return s.Me(username=actor.username, role=actor.role)
