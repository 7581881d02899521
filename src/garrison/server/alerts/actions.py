"""Administrative actions on alerts."""

from __future__ import annotations

from collections.abc import Sequence

from garrison.server.alerts import service as alerts
from garrison.server.alerts.models import Alert, AlertComment
from garrison.server.audit.actor import Actor
from garrison.server.store.unit import Transactions


def acknowledge(db: Transactions, actor: Actor, alert_ids: Sequence[int]) -> list[Alert]:
    with db.transaction() as session:
        return alerts.acknowledge(session, actor, alert_ids)


def assign(
    db: Transactions, actor: Actor, alert_ids: Sequence[int], assignee: str | None
) -> list[Alert]:
    with db.transaction() as session:
        return alerts.assign(session, actor, alert_ids, assignee)


def comment(db: Transactions, actor: Actor, alert_id: int, body: str) -> AlertComment:
    with db.transaction() as session:
        return alerts.comment(session, actor, alert_id, body)
