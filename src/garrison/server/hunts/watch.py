"""This node's view of the active hunts, so that Getjobs stays cheap.

With no active hunt (the usual case) :meth:`HuntWatch.needs_check` is one attribute read and
the check-in's fast path is untouched.  While hunts are active, each station is checked once
per *generation* (one small transaction that queues the hunts it matches and has not had,
``service.materialise``), then answered from memory again.  The generation moves when the
set of active hunts changes (read every ``interval`` seconds, and at once after a hunt is
created or stopped on this node), when group memberships change on this node, and every
``recheck_seconds`` anyway: a station that joined a hunt's group through another node is
reached within that time.

Between the workers of one node (``garrison serve --workers N``) a hunt created, a hunt
stopped or a membership changed on one worker bumps the node's shared counter
(:class:`~garrison.server.siblings.SiblingCounter`, ``<data-dir>/run/hunts.counter``) before
the request answers.  A sibling whose counter moved since its last read takes the full path
(``needs_check`` is true, ``snapshot`` reads the database first) and moves its generation, so
the next Getjobs on any worker sees the change; its watcher looks at the counter every
:data:`SIBLING_TICK` seconds as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import structlog

from garrison.server.hunts import service as hunts
from garrison.server.hunts.service import ActiveHunt
from garrison.server.siblings import SiblingCounter
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database

log = structlog.get_logger("garrison.hunts")

SIBLING_TICK = 0.05  # seconds between two looks at the siblings' counter


class HuntWatch:
    def __init__(
        self,
        db: Database,
        interval: float = 2.0,
        recheck_seconds: float = 60.0,
        siblings: SiblingCounter | None = None,
    ) -> None:
        self.db = db
        self.siblings = siblings
        # The counter as read just before this worker's last read of the active hunts.
        self._siblings_seen = siblings.read() if siblings is not None else -1
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
        if self._siblings_moved():
            return True
        if self._loaded and not self._active:
            return False
        return self._checked.get(station_id) != self._generation

    def _siblings_moved(self) -> bool:
        return self.siblings is not None and self.siblings.read() != self._siblings_seen

    def snapshot(self) -> tuple[int, tuple[ActiveHunt, ...]]:
        """(generation, the active hunts not yet expired), loading them on first use and
        whenever a sibling worker changed hunts or memberships since the last load."""
        if not self._loaded or self._siblings_moved():
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
        seen = self.siblings.read() if self.siblings is not None else -1
        with self.db.reading() as session:
            found = tuple(hunts.active(session))
        keys = frozenset(h.hunt_id for h in found)
        with self._lock:
            stale = time.monotonic() - self._bumped_at > self.recheck_seconds
            # A moved counter may be a sibling's membership change, which the hunt ids do
            # not show: every station is checked again once.
            moved = seen != self._siblings_seen
            if keys != self._keys or stale or moved or not self._loaded:
                self._bump()
            self._active, self._keys, self._loaded = found, keys, True
            self._siblings_seen = seen

    def _tell_siblings(self) -> None:
        # This worker sees its own bump too (one more load and recheck): never swallows a
        # sibling's bump that landed just before it.
        if self.siblings is not None:
            self.siblings.bump()

    def groups_changed(self, station_ids: frozenset[int]) -> None:
        """Memberships changed on this node (none: maybe every station's)."""
        self._tell_siblings()
        with self._lock:
            if not station_ids:
                self._bump()
            for sid in station_ids:
                self._checked.pop(sid, None)

    def changed(self, _ids: frozenset[int] = frozenset()) -> None:
        """A hunt was created or stopped on this node: read the active hunts now."""
        self._tell_siblings()
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
        tick = min(self.interval, SIBLING_TICK) if self.siblings is not None else self.interval
        while True:
            try:
                await asyncio.to_thread(self.reload)
            except Exception:
                log.exception("could not read the active hunts; will retry")
            due = time.monotonic() + self.interval
            while time.monotonic() < due and not self._siblings_moved():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), tick)
                if self._poke.is_set():
                    break
            self._poke.clear()
