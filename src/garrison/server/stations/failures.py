"""Failed agent authorizations, reported as ``station_authorization_failed`` at a bounded
rate: a flood of bad credentials must not flood the event log (or the database).

At most one event per client address per ``interval``; the next one says how many failures
from that address it stands for (``suppressed``).  Memory is bounded: past ``capacity``
addresses the one reported longest ago is forgotten (with the failures it had not reported
yet), so many addresses cost at most ``capacity`` entries.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

CAPACITY = 10_000


class FailureLimiter:
    def __init__(
        self,
        interval: float,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        # address -> (when its last event was reported, failures since, not reported);
        # insertion order is report order, so the front is the longest ago.
        self._entries: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def failed(self, address: str) -> int | None:
        """A failure from ``address``: None when it is not to be reported now, else the
        number of earlier failures from there it also stands for."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(address)
            if entry is not None and now - entry[0] < self.interval:
                self._entries[address] = (entry[0], entry[1] + 1)
                return None
            if entry is not None:
                del self._entries[address]
            self._entries[address] = (now, 0)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
            return entry[1] if entry is not None else 0
