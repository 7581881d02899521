"""Administrative actions on users and their tokens, and the first start's accounts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from garrison.server.audit import service as audit
from garrison.server.audit.actor import SYSTEM, Actor
from garrison.server.enrollment import service as enrollment
from garrison.server.errors import NotAuthenticatedError
from garrison.server.store.unit import Transactions
from garrison.server.users import service as users
from garrison.server.users.models import User

FIRST_KEY_USES = 100
FIRST_KEY_SECONDS = 7 * 86400


@dataclass(frozen=True)
class Login:
    user: User
    token: str
    expires_at: dt.datetime


def login(db: Transactions, username: str, password: str, address: str, ttl_seconds: int) -> Login:
    """A new login token; a refused attempt is audited (and still refused)."""
    try:
        with db.transaction() as session:
            user, token, expires = users.login(session, username, password, ttl_seconds)
            return Login(user, token, expires)
    except NotAuthenticatedError:
        # In its own transaction: the attempt's own one was rolled back.
        with db.transaction() as session:
            audit.record(session, Actor(username[:64], "", address), "auth.login_failed")
        raise


def logout(db: Transactions, token: str) -> None:
    with db.transaction() as session:
        users.logout(session, token)


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
