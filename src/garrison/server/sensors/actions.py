"""Administrative use cases on sensor policies, each one transaction (audited)."""

from __future__ import annotations

from typing import Any

from garrison.server.audit.actor import Actor
from garrison.server.sensors import service
from garrison.server.sensors.models import SensorPolicy
from garrison.server.stations.models import Group
from garrison.server.store.unit import Transactions


def set_default(db: Transactions, actor: Actor, settings: Any) -> SensorPolicy:
    with db.transaction() as session:
        return service.set_default(session, actor, settings)


def set_group(
    db: Transactions, actor: Actor, name: str, settings: Any, priority: int = 0
) -> tuple[Group, SensorPolicy]:
    with db.transaction() as session:
        return service.set_group(session, actor, name, settings, priority)


def unset_group(db: Transactions, actor: Actor, name: str) -> None:
    with db.transaction() as session:
        service.unset_group(session, actor, name)
