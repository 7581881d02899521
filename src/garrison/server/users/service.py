"""Administrators: argon2-hashed passwords, roles, and bearer tokens for the admin API."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from garrison.common.tokens import new_token, token_hash
from garrison.common.vocabulary import Role
from garrison.server.audit import service as audit
from garrison.server.audit.actor import SYSTEM, Actor
from garrison.server.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotAuthenticatedError,
    NotFoundError,
)
from garrison.server.store.base import utcnow
from garrison.server.users import lockout
from garrison.server.users.models import ApiToken, ConsoleSession, User

_hasher = PasswordHasher()
LOGIN_TOKEN = "login"  # noqa: S105 (the name given to tokens made by a password login)
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 10
_ROLES = frozenset(Role)  # ``"x" in Role`` raises TypeError on Python 3.11
# Verifying against a real hash when the user does not exist keeps timing uniform (made on
# first use: hashing at import would slow every `garrison` command).
_dummy: list[str] = []


def _dummy_hash() -> str:
    if not _dummy:
        _dummy.append(_hasher.hash("garrison-timing-equaliser"))
    return _dummy[0]


def role_allows(role: str, needed: Role) -> bool:
    """Whether ``role`` (as stored, so possibly unknown: then never) covers ``needed``."""
    return role in _ROLES and Role(role).rank >= needed.rank


def _check_role(role: str) -> str:
    if role not in _ROLES:
        raise InvalidInputError(f"role must be one of {', '.join(Role)}", field="role")
    return role


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInputError(
            f"password must be at least {MIN_PASSWORD} characters", field="password"
        )
    return password


def create_user(session: Session, actor: Actor, username: str, password: str, role: str) -> User:
    if not USERNAME_RE.match(username):
        raise InvalidInputError("username must be 1-64 of A-Z a-z 0-9 _ . @ -", field="username")
    _check_role(role)
    _check_password(password)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"user {username!r} already exists", field="username")
    user = User(username=username, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.create", username, role=role)
    return user


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user {username!r}")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def _admins_left(session: Session, excluding: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.ADMIN, User.disabled.is_(False), User.id != excluding)
        )
        or 0
    )


def update_user(
    session: Session,
    actor: Actor,
    username: str,
    *,
    role: str | None = None,
    password: str | None = None,
    disabled: bool | None = None,
) -> User:
    user = get_user(session, username)
    # Only what actually changes counts: a PATCH repeating the current role (or state)
    # changes nothing, so it ends no session and revokes no token (admin.token included).
    role_changes = role is not None and role != user.role
    disabling = disabled is True and not user.disabled
    changes: dict[str, object] = {}
    demoting = (role_changes and role != Role.ADMIN) or disabling
    if user.role == Role.ADMIN and demoting and _admins_left(session, user.id) == 0:
        raise ConflictError("the last active admin cannot be demoted or disabled")
    if role is not None:
        _check_role(role)
    if role is not None and role_changes:
        user.role = role
        changes["role"] = role
    if password is not None:
        user.password_hash = _hasher.hash(_check_password(password))
        changes["password"] = "changed"  # noqa: S105 (audit note, no secret)
        # A new password set by an administrator also lifts a login lockout.
        lockout.clear(session, username)
    if disabled is not None and disabled != user.disabled:
        user.disabled = disabled
        changes["disabled"] = disabled
    if role_changes or disabling:
        # A changed role or a disabled account ends every session and API token.
        session.query(ApiToken).filter(ApiToken.user_id == user.id).delete()
        session.query(ConsoleSession).filter(ConsoleSession.user_id == user.id).delete()
    elif password is not None:
        # A new password ends login sessions (whoever knew the old one is out), but keeps
        # long-lived API tokens such as admin.token, which scripts rely on.
        session.query(ApiToken).filter(
            ApiToken.user_id == user.id, ApiToken.name == LOGIN_TOKEN
        ).delete()
        session.query(ConsoleSession).filter(ConsoleSession.user_id == user.id).delete()
    if changes:
        audit.record(session, actor, "user.update", username, **changes)
    return user


def delete_user(session: Session, actor: Actor, username: str) -> None:
    user = get_user(session, username)
    if user.role == Role.ADMIN and _admins_left(session, user.id) == 0:
        raise ConflictError("the last active admin cannot be deleted")
    if actor.user_id == user.id:
        raise ConflictError("you cannot delete your own account")
    session.delete(user)
    audit.record(session, actor, "user.delete", username)


def login(
    session: Session, username: str, password: str, ttl_seconds: int
) -> tuple[User, str, dt.datetime]:
    user = check_password(session, username, password)
    token, expires = issue_token(session, user, LOGIN_TOKEN, ttl_seconds)
    return user, token, expires


def check_password(session: Session, username: str, password: str) -> User:
    """The active user ``username`` whose password this is (both logins, the admin API's
    token and the web console's session, go through here), else NotAuthenticatedError."""
    user = session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password)
        ok = user is not None and not user.disabled
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        raise NotAuthenticatedError("wrong username or password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def issue_token(
    session: Session, user: User, name: str, ttl_seconds: int | None
) -> tuple[str, dt.datetime]:
    token = new_token("gat")
    expires = utcnow() + dt.timedelta(seconds=ttl_seconds) if ttl_seconds else None
    session.add(
        ApiToken(user_id=user.id, token_hash=token_hash(token), name=name, expires_at=expires)
    )
    return token, expires or dt.datetime.max.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    role: str


def resolve_token(session: Session, token: str) -> Principal:
    row = session.execute(
        select(User.id, User.username, User.role, User.disabled, ApiToken.expires_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == token_hash(token))
    ).first()
    if row is None:
        raise NotAuthenticatedError("invalid or revoked token")
    if row.disabled:
        raise ForbiddenError("this account is disabled")
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise NotAuthenticatedError("token expired; log in again")
    return Principal(user_id=row.id, username=row.username, role=row.role)


def logout(session: Session, token: str) -> None:
    """End the login session of ``token``.  A long-lived API token (``admin.token``) is no
    session: logging out with it is refused rather than revoking it for good, which would
    lock scripts (and the operator) out."""
    name = session.scalar(select(ApiToken.name).where(ApiToken.token_hash == token_hash(token)))
    if name is not None and name != LOGIN_TOKEN:
        raise ConflictError(
            f"this is the long-lived API token {name!r}, not a login session: logout does not "
            "revoke it (see docs/security.md to replace admin.token)"
        )
    session.query(ApiToken).filter(ApiToken.token_hash == token_hash(token)).delete()


ADMIN_TOKEN = "admin.token"  # noqa: S105 (the name of the long-lived token of the file)


def reissue_admin_token(session: Session, username: str) -> str:
    """A new long-lived API token for the active admin ``username``, replacing the one it
    had (a leaked or revoked admin.token is rotated); for ``garrison db admin-token``, which
    runs on the server's host with access to its database."""
    user = get_user(session, username)
    if user.role != Role.ADMIN or user.disabled:
        raise ConflictError(f"user {username!r} is not an active admin")
    session.query(ApiToken).filter(
        ApiToken.user_id == user.id, ApiToken.name == ADMIN_TOKEN
    ).delete()
    token, _ = issue_token(session, user, ADMIN_TOKEN, None)
    audit.record(session, SYSTEM, "user.admin_token", username)
    return token


def bootstrap_admin(session: Session) -> tuple[str, str] | None:
    """On a database with no users: create ``admin``; returns (password, api token) once."""
    if session.scalar(select(func.count()).select_from(User)):
        return None
    password = secrets.token_urlsafe(15)
    user = User(username="admin", password_hash=_hasher.hash(password), role=Role.ADMIN)
    session.add(user)
    session.flush()
    token, _ = issue_token(session, user, ADMIN_TOKEN, None)
    audit.record(session, SYSTEM, "user.bootstrap", "admin")
    return password, token
