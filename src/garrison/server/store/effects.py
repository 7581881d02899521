"""Effects after commit: what a unit of work does outside the database once its rows are
durable (waking consumers, waking long-polling agents, forgetting a cached token).

Domain code only names the effect and the ids it concerns (``signal(session, JOBS_QUEUED,
station_id)``); what each signal does on this node is wired once, by the application, with
:meth:`CommitHooks.subscribe`.  :meth:`garrison.server.store.engine.Database.transaction`
runs the subscribers after a commit and never after a rollback, so no effect is seen for a
change that did not happen.  Signals of one transaction are merged: ten jobs for one station
wake it once.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

import structlog
from sqlalchemy.orm import Session

log = structlog.get_logger("garrison.store")

PENDING = "garrison_pending_signals"


class Signal(enum.StrEnum):
    EVENTS_APPENDED = "events_appended"
    """The event log grew (ids: none).  Wakes consumers: procedures and exporters."""
    JOBS_QUEUED = "jobs_queued"
    """Jobs were queued for these stations.  Wakes their long-polls."""
    STATION_CREDENTIALS_REVOKED = "station_credentials_revoked"
    """These stations' tokens no longer hold (deleted, re-enrolled).  Drops cached tokens."""
    CONTENT_CHANGED = "content_changed"
    """The content serial moved (ids: none).  Drops this node's cached manifests."""
    GROUPS_CHANGED = "groups_changed"
    """A group was deleted or its members changed (ids: the stations whose groups changed;
    none: possibly every station).  Drops the cached effective sensor policies."""
    HUNTS_CHANGED = "hunts_changed"
    """A hunt was created or stopped (ids: none).  This node re-reads the active hunts."""
    SENSOR_POLICY_CHANGED = "sensor_policy_changed"
    """A sensor policy (the default, a group's) was set or removed (ids: none, every
    station).  Drops the cached effective sensor policies."""


Subscriber = Callable[[frozenset[int]], None]


def signal(session: Session, name: Signal, ids: Iterable[int] = ()) -> None:
    """Ask for ``name``'s effect once this session's transaction commits."""
    pending: dict[Signal, set[int]] = session.info.setdefault(PENDING, {})
    pending.setdefault(name, set()).update(ids)


class CommitHooks:
    """The subscribers of each signal on this node."""

    def __init__(self) -> None:
        self._subscribers: dict[Signal, list[Subscriber]] = {}

    def subscribe(self, name: Signal, subscriber: Subscriber) -> None:
        self._subscribers.setdefault(name, []).append(subscriber)

    def discard(self, session: Session) -> None:
        session.info.pop(PENDING, None)

    def run(self, session: Session) -> None:
        """Run the effects a committed transaction asked for.  A failing subscriber is
        logged and does not stop the others: the change itself is already durable."""
        pending: dict[Signal, set[int]] | None = session.info.pop(PENDING, None)
        if not pending:
            return
        for name, ids in pending.items():
            frozen = frozenset(ids)
            for subscriber in self._subscribers.get(name, ()):
                try:
                    subscriber(frozen)
                except Exception:
                    log.exception("after-commit effect failed", signal=str(name))
