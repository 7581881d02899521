"""The audit log: every change an administrator makes, as a namespaced action tag."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.common.catalogue import format_timestamp
from garrison.server.audit.actor import Actor
from garrison.server.audit.models import AuditEntry
from garrison.server.events.service import emit
from garrison.server.store.base import utcnow

# Actions that record a refused attempt rather than a change: their Audit_Event result is
# "Failed" (a locked or throttled login is no more a success than a wrong password).
REFUSALS = frozenset({"auth.login_locked", "auth.login_throttled"})


def result_of(action: str) -> str:
    return "Failed" if action.endswith("_failed") or action in REFUSALS else "Success"


def record(
    session: Session, actor: Actor, action: str, target: str = "", **details: Any
) -> AuditEntry:
    entry = AuditEntry(
        actor=actor.username, action=action, target=target, details=details, address=actor.address
    )
    session.add(entry)
    # The audit log is also an event (ESET's Audit_Event), for procedures and the SIEM.
    emit(
        session,
        "audit",
        None,
        {
            "time": format_timestamp(utcnow()),
            "domain": action.split(".", 1)[0],
            "action": action,
            "target": target,
            "detail": json.dumps(details, default=str, sort_keys=True)[:4000] if details else None,
            "user": actor.username,
            "result": result_of(action),
        },
    )
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
