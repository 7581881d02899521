"""Administrative actions on the event log: how long each type is kept."""

from __future__ import annotations

from typing import Any

from garrison.server.audit.actor import Actor
from garrison.server.events import retention
from garrison.server.store.unit import Transactions


def set_retention(db: Transactions, actor: Actor, changes: dict[str, Any]) -> dict[str, int]:
    """Change the days some event types are kept; returns every type's."""
    with db.transaction() as session:
        return retention.set_many(session, actor, changes)
