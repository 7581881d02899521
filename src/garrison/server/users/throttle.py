"""Per client address limits on failed attempts (password logins, enrollment keys), in
this node's memory.

Each address has a bucket of ``limit`` failures that refills over ``window`` seconds; with
the bucket empty, further attempts are refused (429) before any password or key is
checked, so a single client gets at most ``limit`` guesses per window on each node.  Per
node on purpose: the address limit is a brake on one client's speed, which needs no
coordination; what must hold across nodes, the account lockout, is in the database (see
``lockout``).  Memory is bounded: past ``capacity`` addresses the least recently failing is
forgotten.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from garrison.server.settings import Settings
from garrison.server.stations.failures import FailureLimiter
from garrison.server.users.lockout import Policy

CAPACITY = 10_000


class AddressThrottle:
    def __init__(
        self,
        limit: int,
        window: float,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = float(limit)
        self.rate = limit / window  # failures regained per second
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        # address -> (failures left, when that was computed); the front failed longest ago.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _left(self, address: str, now: float) -> float:
        bucket = self._buckets.get(address)
        if bucket is None:
            return self.limit
        left, then = bucket
        return min(self.limit, left + (now - then) * self.rate)

    def retry_after(self, address: str) -> float | None:
        """None when ``address`` may try now, else the seconds until it may."""
        now = self._clock()
        with self._lock:
            left = self._left(address, now)
        if left >= 1.0:
            return None
        return (1.0 - left) / self.rate

    def failed(self, address: str) -> None:
        now = self._clock()
        with self._lock:
            left = self._left(address, now)
            self._buckets.pop(address, None)
            self._buckets[address] = (max(left - 1.0, 0.0), now)
            while len(self._buckets) > self.capacity:
                self._buckets.popitem(last=False)


@dataclass(frozen=True)
class LoginGuard:
    """What a node checks before a password login: the address limit (here, per node), the
    account lockout policy (in the database), and the aggregation of refusals in the audit
    log: a refused attempt is audited at most once per address, or per account, every
    ``auth_failure_report_seconds``, the next entry counting those it stands for."""

    addresses: AddressThrottle
    policy: Policy
    refusals: FailureLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginGuard:
        return cls(
            AddressThrottle(settings.auth_address_failures, settings.auth_address_window_seconds),
            Policy(
                settings.login_lockout_after,
                settings.login_lockout_seconds,
                settings.login_lockout_max_seconds,
            ),
            FailureLimiter(settings.auth_failure_report_seconds),
        )
