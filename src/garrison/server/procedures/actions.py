"""Administrative actions on event procedures: set, enable, disable, delete, dry-run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from garrison.server.audit.actor import Actor
from garrison.server.procedures import service as procedures
from garrison.server.procedures.dispatcher import RunResult, run_procedure
from garrison.server.procedures.models import Procedure
from garrison.server.procedures.sandbox import Limits
from garrison.server.store.engine import Database
from garrison.server.store.unit import Transactions


def set_procedure(
    db: Transactions, actor: Actor, event: str, source: str, enabled: bool = True
) -> Procedure:
    """Store ``source`` as the event's procedure (a new version)."""
    with db.transaction() as session:
        return procedures.put(session, actor, event, source, enabled)


def set_enabled(db: Transactions, actor: Actor, event: str, enabled: bool) -> Procedure:
    with db.transaction() as session:
        return procedures.set_enabled(session, actor, event, enabled)


def delete_procedure(db: Transactions, actor: Actor, event: str) -> None:
    with db.transaction() as session:
        procedures.delete(session, actor, event)


def dry_run(
    db: Database,
    event: str,
    args: Mapping[str, Any],
    limits: Limits,
    source: str | None = None,
) -> RunResult:
    """Run the stored procedure (or ``source``) with ``args`` and undo all it did: its
    rows, its recorded error and its signals are never committed."""
    with db.sessions() as session:
        session.begin()
        try:
            if source is None:
                source = procedures.get(session, event).source
            else:
                procedures.check_name(event)
            return run_procedure(session, event, source, args, None, limits)
        finally:
            session.rollback()
