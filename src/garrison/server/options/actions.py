"""Administrative actions on the run-time settings."""

from __future__ import annotations

from typing import Any

from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.errors import InvalidInputError
from garrison.server.options import service as options
from garrison.server.store.unit import Transactions


def update_settings(db: Transactions, actor: Actor, changes: dict[str, Any]) -> dict[str, int]:
    """Change some settings; returns them all."""
    if not changes:
        raise InvalidInputError("give at least one setting to change")
    with db.transaction() as session:
        values = options.set_many(session, changes)
        audit.record(session, actor, "settings.update", "", **changes)
        return values
