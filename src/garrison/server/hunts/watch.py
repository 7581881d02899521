"""This node's view of the active hunts, so that Getjobs stays cheap.

With no active hunt (the usual case) :meth:`HuntWatch.needs_check` is one attribute read and
the check-in's fast path is untouched.  While hunts are active, each station is checked once
per *generation* (one small transaction that queues the hunts it matches and has not had,
``service.materialise``), then answered from memory again.  The generation moves when the
set of active hunts changes (read every ``interval`` seconds, and at once after a hunt is
created or stopped on this node), when group memberships change on this node, and every
``recheck_seconds`` anyway: a station that joined a hunt's group through another node is
reached within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import structlog

from garrison.server.hunts import service as hunts
from garrison.server.hunts.service import ActiveHunt
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database

log = structlog.get_logger("garrison.hunts")


class HuntWatch:
    def __init__(self, db: Database, interval: float = 2.0, recheck_seconds: float = 60.0) -> None:
        self.db = db
        self.interval = interval
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._loaded = False
        self._active: tuple[ActiveHunt, ...] = ()
        self._keys: frozenset[int] = frozenset()
        self._generation = 0
        self._checked: dict[int, int] = {}
        self._bumped_at = time.monotonic()
        self._poke: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def needs_check(self, station_id: int) -> bool:
        """Whether this station's Getjobs must look for hunts it has not been given."""
        if self._loaded and not self._active:
            return False
        return self._checked.get(station_id) != self._generation

    def snapshot(self) -> tuple[int, tuple[ActiveHunt, ...]]:
        """(generation, the active hunts not yet expired), loading them on first use."""
        if not self._loaded:
            self.reload()
        now = utcnow()
        with self._lock:
            return self._generation, tuple(h for h in self._active if h.expires_at > now)

    def checked(self, station_id: int, generation: int) -> None:
        with self._lock:
            self._checked[station_id] = generation

    def _bump(self) -> None:
        self._generation += 1
        self._checked = {}
        self._bumped_at = time.monotonic()

    def reload(self) -> None:
        with self.db.reading() as session:
            found = tuple(hunts.active(session))
        keys = frozenset(h.hunt_id for h in found)
        with self._lock:
            stale = time.monotonic() - self._bumped_at > self.recheck_seconds
            if keys != self._keys or stale or not self._loaded:
                self._bump()
            self._active, self._keys, self._loaded = found, keys, True

    def groups_changed(self, station_ids: frozenset[int]) -> None:
        """Memberships changed on this node (none: maybe every station's)."""
        with self._lock:
            if not station_ids:
                self._bump()
            for sid in station_ids:
                self._checked.pop(sid, None)

    def changed(self, _ids: frozenset[int] = frozenset()) -> None:
        """A hunt was created or stopped on this node: read the active hunts now."""
        try:
            self.reload()
        except Exception:
            log.exception("could not read the active hunts; the watcher retries")
            self.poke()

    def poke(self) -> None:
        if self._loop is not None and self._poke is not None:
            self._loop.call_soon_threadsafe(self._poke.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._poke = asyncio.Event()
        while True:
            try:
                await asyncio.to_thread(self.reload)
            except Exception:
                log.exception("could not read the active hunts; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.interval)
            self._poke.clear()
