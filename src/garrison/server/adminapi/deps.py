"""Authentication and role checks for the admin API: one dependency, explicit roles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from garrison.common.vocabulary import Role
from garrison.server.audit.actor import Actor
from garrison.server.context import ServerContext
from garrison.server.errors import ForbiddenError, NotAuthenticatedError
from garrison.server.users import service as users

_bearer = HTTPBearer(auto_error=False, description="token from POST /admin/v1/auth/login")


def get_ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServerContext, Depends(get_ctx)]


def _principal(
    request: Request,
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticatedError("an admin API bearer token is required")
    with ctx.db.reading() as session:
        principal = users.resolve_token(session, credentials.credentials)
    address = request.client.host if request.client else ""
    return Actor(
        username=principal.username,
        role=principal.role,
        address=address,
        user_id=principal.user_id,
    )


def require(role: Role) -> Callable[..., Actor]:
    def check(actor: Annotated[Actor, Depends(_principal)]) -> Actor:
        if not users.role_allows(actor.role, role):
            raise ForbiddenError(f"this needs the {role} role; you are {actor.role}")
        return actor

    return check


Viewer = Annotated[Actor, Depends(require(Role.VIEWER))]
Operator = Annotated[Actor, Depends(require(Role.OPERATOR))]
Admin = Annotated[Actor, Depends(require(Role.ADMIN))]
