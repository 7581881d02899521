"""Administrative actions on users and their tokens, and the first start's accounts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from garrison.server.audit import service as audit
from garrison.server.audit.actor import SYSTEM, Actor
from garrison.server.enrollment import service as enrollment
from garrison.server.errors import NotAuthenticatedError, RateLimitedError
from garrison.server.store.base import utcnow
from garrison.server.store.unit import Transactions
from garrison.server.users import lockout, sessions
from garrison.server.users import service as users
from garrison.server.users.models import User
from garrison.server.users.throttle import LoginGuard

_T = TypeVar("_T")
FIRST_KEY_USES = 100
FIRST_KEY_SECONDS = 7 * 86400


@dataclass(frozen=True)
class Login:
    user: User
    token: str
    expires_at: dt.datetime


def login(
    db: Transactions,
    username: str,
    password: str,
    address: str,
    ttl_seconds: int,
    guard: LoginGuard,
) -> Login:
    """A new login token.  Refused with RateLimitedError (before the password is checked)
    while ``address`` has used up its failures on this node or the account is locked (see
    ``users.throttle`` and ``users.lockout``); a failed attempt is audited, counted towards
    both, and still refused."""

    def issue(session: Session) -> Login:
        user, token, expires = users.login(session, username, password, ttl_seconds)
        return Login(user, token, expires)

    return _guarded(db, username, address, guard, issue)


def console_login(
    db: Transactions,
    username: str,
    password: str,
    address: str,
    guard: LoginGuard,
    ttl_seconds: int,
    idle_seconds: int,
) -> sessions.Opened:
    """A new web console session, under the same limits, lockout and audit as
    :func:`login` (one copy of each rule)."""

    def issue(session: Session) -> sessions.Opened:
        user = users.check_password(session, username, password)
        opened = sessions.open_session(session, user, address, ttl_seconds, idle_seconds)
        actor = Actor(user.username, user.role, address, user.id)
        audit.record(session, actor, "auth.console_login")
        return opened

    return _guarded(db, username, address, guard, issue)


def _guarded(
    db: Transactions,
    username: str,
    address: str,
    guard: LoginGuard,
    issue: Callable[[Session], _T],
) -> _T:
    wait = guard.addresses.retry_after(address)
    if wait is not None:
        _throttled(db, guard, "address", username, address, wait)
        raise RateLimitedError(
            "too many failed logins from this address; try again later", retry_after=wait
        )
    try:
        with db.transaction() as session:
            now = utcnow()
            until = lockout.locked_until(session, username, now)
            if until is not None:
                raise RateLimitedError(
                    "this account is locked after too many failed logins; try again later",
                    retry_after=(until - now).total_seconds(),
                )
            done = issue(session)
            lockout.clear(session, username)
            return done
    except RateLimitedError as exc:
        _throttled(db, guard, "account", username, address, exc.retry_after)
        raise
    except NotAuthenticatedError:
        guard.addresses.failed(address)
        # In its own transaction: the attempt's own one was rolled back.
        with db.transaction() as session:
            actor = Actor(lockout.key(username), "", address)
            audit.record(session, actor, "auth.login_failed")
            failure = lockout.record_failure(session, username, guard.policy)
            if failure.locked_until is not None:
                audit.record(
                    session,
                    actor,
                    "auth.login_locked",
                    lockout.key(username),
                    failures=failure.failures,
                    locked_until=failure.locked_until.isoformat(),
                )
        raise


def _throttled(
    db: Transactions, guard: LoginGuard, scope: str, username: str, address: str, wait: float
) -> None:
    """Audit a refused attempt, at most once per address (or account) per interval: a
    flood of attempts must not flood the audit log.  The entry's ``suppressed`` counts the
    refusals since the last entry that it stands for."""
    subject = address if scope == "address" else lockout.key(username)
    suppressed = guard.refusals.failed(f"{scope}:{subject}")
    if suppressed is None:
        return
    with db.transaction() as session:
        audit.record(
            session,
            Actor(lockout.key(username), "", address),
            "auth.login_throttled",
            subject,
            limit=scope,
            retry_after=max(1, round(wait)),
            suppressed=suppressed,
        )


def logout(db: Transactions, token: str) -> None:
    with db.transaction() as session:
        users.logout(session, token)


def console_logout(db: Transactions, actor: Actor, token: str) -> None:
    with db.transaction() as session:
        sessions.close_session(session, token)
        audit.record(session, actor, "auth.console_logout")


def reissue_admin_token(db: Transactions, username: str) -> str:
    with db.transaction() as session:
        return users.reissue_admin_token(session, username)


def create_user(db: Transactions, actor: Actor, username: str, password: str, role: str) -> User:
    with db.transaction() as session:
        return users.create_user(session, actor, username, password, role)


def update_user(
    db: Transactions,
    actor: Actor,
    username: str,
    *,
    role: str | None = None,
    password: str | None = None,
    disabled: bool | None = None,
) -> User:
    with db.transaction() as session:
        return users.update_user(
            session, actor, username, role=role, password=password, disabled=disabled
        )


def delete_user(db: Transactions, actor: Actor, username: str) -> None:
    with db.transaction() as session:
        users.delete_user(session, actor, username)


@dataclass(frozen=True)
class FirstAccounts:
    admin_password: str
    admin_token: str
    enrollment_key: str


def bootstrap(db: Transactions) -> FirstAccounts | None:
    """On a database with no users: the ``admin`` user, its API token and a first
    enrollment key, all or nothing.  ``None`` when there are users already, also when
    another node starting at the same time created them first."""
    try:
        with db.transaction() as session:
            created = users.bootstrap_admin(session)
            if created is None:
                return None
            password, token = created
            _, key = enrollment.create_key(
                session, SYSTEM, FIRST_KEY_USES, FIRST_KEY_SECONDS, "created at first start"
            )
            return FirstAccounts(password, token, key)
    except IntegrityError:
        return None
