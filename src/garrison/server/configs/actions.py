"""Administrative actions on configurations: the desired one agents fetch."""

from __future__ import annotations

from garrison.server.audit.actor import Actor
from garrison.server.configs import service as configs
from garrison.server.store.unit import Transactions


def set_desired(db: Transactions, actor: Actor, kind: str, pairs: configs.Pairs) -> dict[str, str]:
    with db.transaction() as session:
        return configs.set_desired(session, actor, kind, pairs)
