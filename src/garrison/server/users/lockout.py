"""Per-account lockout of password logins, kept in the database so that it holds on every
node sharing it.

After ``after`` consecutive failures a username is locked for ``base`` seconds, and each
further failure (possible only once a lock has expired) doubles it, up to ``maximum``.  A
lock always expires: an attacker can slow the owner's password logins down to one guess
per ``maximum`` seconds, never lock the account for good, and bearer tokens (``admin.token``,
sessions already open) are never affected.  A success, or a new password set by an
administrator, clears the count.  Attempts while locked are refused before the password is
checked and do not extend the lock.

Usernames that do not exist are counted and locked the same way, so a lock tells nothing
about which accounts exist; rows of failures older than ``FORGET_SECONDS`` are forgotten
(deleted as further failures come), so the table stays small.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from garrison.server.store.base import utcnow
from garrison.server.store.upsert import insert_ignore
from garrison.server.users.models import LoginLockout

# A failure this old no longer counts towards a lock.
FORGET_SECONDS = 86400.0


@dataclass(frozen=True)
class Policy:
    after: int
    base: float
    maximum: float

    def lock_seconds(self, failures: int) -> float:
        """How long ``failures`` consecutive failures lock the account (0: not locked)."""
        if failures < self.after:
            return 0.0
        # Capped before exponentiation: a count in the thousands must not overflow.
        doublings = min(failures - self.after, 40)
        return float(min(self.base * 2.0**doublings, self.maximum))


def key(username: str) -> str:
    """The row's key: usernames are at most 64 characters (longer ones cannot exist)."""
    return username[:64]


def locked_until(session: Session, username: str, now: dt.datetime) -> dt.datetime | None:
    """When the lock on ``username`` ends, if it is locked now."""
    until = session.scalar(
        select(LoginLockout.locked_until).where(LoginLockout.username == key(username))
    )
    if until is not None and until > now:
        return until
    return None


@dataclass(frozen=True)
class Failure:
    failures: int  # consecutive, this one included
    locked_until: dt.datetime | None  # a lock this failure began


def record_failure(session: Session, username: str, policy: Policy) -> Failure:
    """Count a failed login; lock the account when the count reaches the policy's."""
    now = utcnow()
    name = key(username)
    forget_before = now - dt.timedelta(seconds=FORGET_SECONDS)
    session.execute(
        delete(LoginLockout).where(
            LoginLockout.last_failed_at < forget_before,
            or_(LoginLockout.locked_until.is_(None), LoginLockout.locked_until < now),
        )
    )
    insert_ignore(
        session,
        LoginLockout.__table__,  # type: ignore[arg-type]
        {"username": name, "failures": 0, "last_failed_at": now, "locked_until": None},
    )
    # Locked for the rest of the transaction on PostgreSQL (SQLite's writes are serial
    # anyway): two nodes counting failures at once cannot lose one.
    row = session.scalars(
        select(LoginLockout).where(LoginLockout.username == name).with_for_update()
    ).one()
    row.failures += 1
    row.last_failed_at = now
    seconds = policy.lock_seconds(row.failures)
    began = now + dt.timedelta(seconds=seconds) if seconds else None
    if began is not None:
        row.locked_until = began
    return Failure(row.failures, began)


def clear(session: Session, username: str) -> None:
    session.execute(delete(LoginLockout).where(LoginLockout.username == key(username)))
