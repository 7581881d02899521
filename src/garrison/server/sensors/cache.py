"""Each station's effective sensor policy, cached per node: an agent's unchanged poll of
``GET /api/sensor-policy`` reads no database.

What the effective policy depends on changes rarely (an administrator sets a policy, moves
a station between groups, deletes a group), so the cache drops entries instead of expiring
them:

- on this node, at once, when such a change commits (``Signal.SENSOR_POLICY_CHANGED`` and
  ``Signal.GROUPS_CHANGED``; ``STATION_CREDENTIALS_REVOKED`` for a deleted or re-enrolled
  station);
- on every node, within ``sensor_policy_watch_seconds``: the change also writes a marker row
  (``garrison.server.options.service.touch_marker``) in its transaction, and each node's
  watcher reads the markers (one indexed read) and drops the whole cache when one moved.

A policy read from the database just before a change committed must not be cached after it
was dropped: :meth:`PolicyCache.put` is given the :attr:`PolicyCache.generation` seen before
the read, and caches nothing when anything was dropped since (the next poll reads again).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_ENTRIES = 200_000  # beyond this, the cache starts afresh (a fleet larger than planned)


@dataclass(frozen=True)
class AgentPolicy:
    station_id: int
    version: str
    settings: dict[str, Any]


class PolicyCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: dict[int, AgentPolicy] = {}
        self._lock = threading.Lock()
        self.generation = 0
        self._markers: dict[str, str] | None = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, station_id: int) -> AgentPolicy | None:
        # No lock: a dict lookup is atomic and entries are immutable.
        found = self._entries.get(station_id)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, policy: AgentPolicy, since: int) -> None:
        """Cache a policy read from the database; ``since``: :attr:`generation` before it."""
        with self._lock:
            if since != self.generation:
                return
            if len(self._entries) >= self.max_entries:
                self._entries = {}
            self._entries[policy.station_id] = policy

    def forget(self, station_ids: Iterable[int] = ()) -> None:
        """Drop these stations' entries; none given: every entry (a policy changed)."""
        ids = frozenset(station_ids)
        with self._lock:
            self.generation += 1
            if not ids:
                self._entries = {}
                return
            for station_id in ids:
                self._entries.pop(station_id, None)

    def observe_markers(self, markers: Mapping[str, str]) -> bool:
        """The markers as the watcher just read them: when one moved since the last read, a
        change committed (maybe on another node) and the cache is dropped.  True then.  The
        first read drops it too: what was cached before it may predate a change."""
        seen = dict(markers)
        with self._lock:
            moved = seen != self._markers
            self._markers = seen
        if moved:
            self.forget()
        return moved
