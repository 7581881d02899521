"""Coalesced ``last_seen`` writes, and the sweep that marks silent stations offline.

Every agent checks in every minute; one UPDATE per request would make the database the
bottleneck.  Check-ins are noted in memory and written in one batch every few seconds (and at
shutdown).  A node that dies loses at most one interval of last-seen times, never data.  What
a written check-in changes (a station's return, its authorization) is
``stations/transitions.py``.
"""

from __future__ import annotations

import datetime as dt
import threading

from garrison.server.options import service as options
from garrison.server.procedures.runner import ProcedureRunner
from garrison.server.stations import transitions
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database


class PresenceTracker:
    def __init__(self, procedures: ProcedureRunner | None = None) -> None:
        # Runs the authorization procedure of a return (None: returns run none).
        self.procedures = procedures
        self._lock = threading.Lock()
        self._pending: dict[int, transitions.CheckIn] = {}

    def seen(self, station_id: int, address: str) -> None:
        with self._lock:
            self._pending[station_id] = (utcnow(), address)

    def pending(self, station_id: int) -> dt.datetime | None:
        with self._lock:
            entry = self._pending.get(station_id)
        return entry[0] if entry else None

    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self, db: Database) -> int:
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            with db.transaction() as session:
                returns = transitions.checked_in(session, batch, self.procedures)
        except Exception:
            with self._lock:
                for sid, entry in batch.items():
                    self._pending.setdefault(sid, entry)
            raise
        # Written: the returns' procedures run now, each with no transaction open.
        if returns and self.procedures is not None:
            transitions.authorize_returns(db, self.procedures, returns)
        return len(batch)

    def sweep(self, db: Database) -> int:
        """Mark the stations silent past the timeout disconnected; returns how many."""
        # This node's pending check-ins first, so none of its stations looks silent.
        self.flush(db)
        with db.transaction() as session:
            return transitions.disconnect_silent(
                session, options.get(session, "offline_after_seconds")
            )
