"""Administrative hunt actions, each one transaction: create and stop.

A created hunt wakes the long-polls of the stations queued for it (``JOBS_QUEUED``) and
tells this node's :class:`~garrison.server.hunts.watch.HuntWatch` (``HUNTS_CHANGED``);
other nodes see it at their watcher's next read.
"""

from __future__ import annotations

from typing import Any

from garrison.common.vocabulary import JobPriority
from garrison.server.audit.actor import Actor
from garrison.server.hunts import service as hunts
from garrison.server.hunts.models import Hunt
from garrison.server.store.effects import Signal, signal
from garrison.server.store.unit import Transactions


def create_hunt(
    db: Transactions,
    actor: Actor,
    question: Any,
    target: Any,
    expires_in: Any,
    priority: int = JobPriority.MEDIUM,
) -> Hunt:
    with db.transaction() as session:
        hunt, queued = hunts.create(session, actor, question, target, expires_in, priority)
        signal(session, Signal.JOBS_QUEUED, queued)
        signal(session, Signal.HUNTS_CHANGED)
        return hunt


def stop_hunt(db: Transactions, actor: Actor, hunt_id: int) -> Hunt:
    with db.transaction() as session:
        hunt = hunts.stop(session, actor, hunt_id)
        signal(session, Signal.HUNTS_CHANGED)
        return hunt


def close_expired(db: Transactions) -> int:
    """Periodic: an expired hunt's unreached stations end ``cancelled``, with the reason."""
    with db.transaction() as session:
        return hunts.close_expired(session)
