"""Coalesced ``last_seen`` writes.

Every agent checks in every minute; one UPDATE per request would make the database the
bottleneck.  Check-ins are noted in memory and written in one batch every few seconds (and at
shutdown).  A node that dies loses at most one interval of last-seen times, never data.
"""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import bindparam, update

from garrison.server.events.emitters import reconnected
from garrison.server.stations.models import Station
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database


class PresenceTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[dt.datetime, str]] = {}

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
        rows = [
            {"sid": sid, "seen": seen, "addr": addr[:64]} for sid, (seen, addr) in batch.items()
        ]
        try:
            with db.transaction() as session:
                session.connection().execute(
                    update(Station.__table__)  # type: ignore[arg-type]
                    .where(Station.__table__.c.id == bindparam("sid"))
                    .where(Station.__table__.c.last_seen < bindparam("seen"))
                    .values(last_seen=bindparam("seen"), address=bindparam("addr")),
                    rows,
                )
                # A station seen again after its DISCONNECTED is connected again.
                reconnected(session, {sid: seen for sid, (seen, _) in batch.items()})
        except Exception:
            with self._lock:
                for sid, entry in batch.items():
                    self._pending.setdefault(sid, entry)
            raise
        return len(rows)
