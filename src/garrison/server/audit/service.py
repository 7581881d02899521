"""The audit log: every change an administrator makes, as a namespaced action tag."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.server.audit.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    """Who is making a change: an admin API user, or the server itself."""

    username: str
    role: str
    address: str = ""
    user_id: int | None = None


SYSTEM = Actor(username="system", role="admin")


def record(
    session: Session, actor: Actor, action: str, target: str = "", **details: Any
) -> AuditEntry:
    entry = AuditEntry(
        actor=actor.username, action=action, target=target, details=details, address=actor.address
    )
    session.add(entry)
    return entry


def search(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        # "job" matches "job.create", "job.cancel"…
        query = query.where(
            (AuditEntry.action == action) | AuditEntry.action.startswith(action + ".")
        )
    if since:
        query = query.where(AuditEntry.at >= since)
    return list(session.scalars(query.limit(limit).offset(offset)))
