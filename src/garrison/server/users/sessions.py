"""Web console sessions: opened by a password login (``actions.console_login``), found by
the cookie's value on every request, ended by logout, by idle time, by their absolute end,
or by a change to the user (``service.update_user``), on every node alike."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from garrison.common.tokens import new_token, token_hash
from garrison.server.errors import ForbiddenError, NotAuthenticatedError
from garrison.server.store.base import utcnow
from garrison.server.users.models import ConsoleSession, User

# last_seen_at is rewritten at most this often: a page's partial updates and the live
# stream must not write the row on every request.
TOUCH_SECONDS = 30


@dataclass(frozen=True)
class Opened:
    user: User
    token: str
    csrf_token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class ConsolePrincipal:
    session_id: int
    user_id: int
    username: str
    role: str
    csrf_token: str
    last_seen_at: dt.datetime


def open_session(
    session: Session, user: User, address: str, ttl_seconds: int, idle_seconds: int
) -> Opened:
    now = utcnow()
    # Ended sessions of this user, and expired ones of anyone, go here: logins are rare, the
    # indexes make it cheap.
    idle = now - dt.timedelta(seconds=idle_seconds)
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    session.execute(
        delete(ConsoleSession).where(
            ConsoleSession.user_id == user.id, ConsoleSession.last_seen_at <= idle
        )
    )
    token = new_token("gcs")
    csrf = secrets.token_urlsafe(32)
    expires = now + dt.timedelta(seconds=ttl_seconds)
    session.add(
        ConsoleSession(
            user_id=user.id,
            token_hash=token_hash(token),
            csrf_token=csrf,
            address=address[:64],
            created_at=now,
            last_seen_at=now,
            expires_at=expires,
        )
    )
    return Opened(user, token, csrf, expires)


def resolve(session: Session, token: str, idle_seconds: int) -> ConsolePrincipal:
    """The session of the cookie value ``token``; NotAuthenticatedError when there is none
    (logged out, ended by a change to the user, tampered with) or it has expired."""
    row = session.execute(
        select(
            ConsoleSession.id,
            ConsoleSession.csrf_token,
            ConsoleSession.last_seen_at,
            ConsoleSession.expires_at,
            User.id.label("user_id"),
            User.username,
            User.role,
            User.disabled,
        )
        .join(User, User.id == ConsoleSession.user_id)
        .where(ConsoleSession.token_hash == token_hash(token))
    ).first()
    if row is None:
        raise NotAuthenticatedError("your session has ended; log in again")
    now = utcnow()
    if row.expires_at <= now or row.last_seen_at + dt.timedelta(seconds=idle_seconds) <= now:
        raise NotAuthenticatedError("your session expired; log in again")
    if row.disabled:
        raise ForbiddenError("this account is disabled")
    return ConsolePrincipal(
        session_id=row.id,
        user_id=row.user_id,
        username=row.username,
        role=row.role,
        csrf_token=row.csrf_token,
        last_seen_at=row.last_seen_at,
    )


def needs_touch(principal: ConsolePrincipal) -> bool:
    return principal.last_seen_at + dt.timedelta(seconds=TOUCH_SECONDS) <= utcnow()


def touch(session: Session, session_id: int) -> None:
    session.execute(
        update(ConsoleSession).where(ConsoleSession.id == session_id).values(last_seen_at=utcnow())
    )


def close_session(session: Session, token: str) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash(token)))


def csrf_matches(expected: str, given: str) -> bool:
    return secrets.compare_digest(expected.encode(), given.encode())
