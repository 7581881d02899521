"""From sensors to the spool: the rate limit, a bounded queue and one writer thread.

A sensor's reading thread must not wait on the spool's fsync (the kernel would overflow its
socket meanwhile), so it hands each event to a bounded in-memory queue and goes back to the
kernel.  The writer thread queues them into the spool in batches, one transaction each
(``Spool.enqueue_telemetry``).  Every event ends counted once: ``produced`` when the spool
has it, or ``dropped_rate_limit`` / ``dropped_queue`` / ``dropped_spool``.

**Batching and the durability window.**  The writer wakes when the first event of a batch
arrives, then lingers ``LINGER`` seconds (or until ``BATCH`` events wait) so that one
transaction and one fsync carry many events: at 2,000 events a second a commit per event
batch of ~7 cost three times the CPU of a commit per ~100 (bench/findings.md, the sensors
scenario).  An event is claimed (``produced``) only once its transaction has committed; what
is still in memory when the agent is killed -- at most the queue, in practice the last
``LINGER`` seconds plus one commit -- is lost uncounted, as it always was between the
kernel's read and the commit (the kernel keeps nothing once read).  The window is bounded
and documented (docs/agent.md); it is not a claimed event lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from garrison.agent.errors import LocalError
from garrison.agent.sensors.base import Sensor
from garrison.agent.sensors.exclusions import Exclusions
from garrison.agent.sensors.ratelimit import TokenBucket
from garrison.agent.spool import Spool, SpoolEvent

log = logging.getLogger("garrison.agent.sensors")

QUEUE_SIZE = 20_000
BATCH = 500
LINGER = 0.05  # seconds the writer gathers a batch after its first event
IDLE_WAKE = 0.2  # seconds between two looks at an empty queue (a missed wake-up, stop)
WARN_EVERY = 60.0  # seconds between two log lines about the same kind of drop


class Emitter:
    def __init__(
        self,
        spool: Spool,
        rate: float,
        burst: float,
        spool_share: float,
        on_queued: Callable[[], None] = lambda: None,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.spool = spool
        self.rate, self.burst = rate, burst
        self.spool_share = min(max(spool_share, 0.0), 1.0)
        self.on_queued = on_queued
        # A deque, not queue.Queue: append and popleft are atomic without its lock and
        # condition (two per event each way); the bound is checked before the append (a
        # race between two sensors' threads may pass it by one event each, no more).
        self._queue: deque[tuple[Sensor, SpoolEvent]] = deque()
        self.queue_size = queue_size
        self._wake = threading.Event()
        self._buckets: dict[str, TokenBucket] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: dict[str, float] = {}
        self.exclusions = Exclusions()

    def set_limits(self, rate: float, burst: float) -> None:
        """A new rate limit (a new policy): each sensor's bucket starts again, full."""
        if (rate, burst) != (self.rate, self.burst):
            self.rate, self.burst = rate, burst
            self._buckets = {}

    # -- the sensors' side ---------------------------------------------------------------------

    def allow(self, sensor: Sensor) -> bool:
        """Take a token from the sensor's bucket; over the limit, the drop is counted here.
        Sensors ask before they enrich an event, so a storm costs little."""
        bucket = self._buckets.get(sensor.name)
        if bucket is None:
            bucket = self._buckets.setdefault(sensor.name, TokenBucket(self.rate, self.burst))
        if bucket.take():
            return True
        sensor.counters.add("dropped_rate_limit")
        self._warn(f"{sensor.name}-rate", f"sensor {sensor.name}: over its rate limit, dropping")
        return False

    def submit(
        self,
        sensor: Sensor,
        event_type: str,
        data: dict[str, Any],
        event_id: str,
        when: float,
    ) -> bool:
        exclusions = self.exclusions
        if exclusions and exclusions.excludes(event_type, data):
            sensor.counters.add("excluded")
            return True
        pending = self._queue
        if len(pending) >= self.queue_size:
            sensor.counters.add("dropped_queue")
            self._warn(f"{sensor.name}-queue", f"sensor {sensor.name}: event queue full, dropping")
            return False
        idle = not pending
        pending.append((sensor, SpoolEvent(sensor.name, event_type, event_id, when, data)))
        if idle:
            self._wake.set()  # the first of a batch: the writer starts its linger
        return True

    # -- the writer thread ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sensor-emitter", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def pending(self) -> int:
        return len(self._queue)

    def _run(self) -> None:
        pending = self._queue
        while True:
            if not pending:
                if self._stop.is_set():
                    return
                self._wake.wait(IDLE_WAKE)
                self._wake.clear()
                continue
            if not self._stop.is_set():
                # Gather a batch: one commit (one fsync) for what LINGER brings.
                deadline = time.monotonic() + LINGER
                while len(pending) < BATCH and not self._stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    time.sleep(min(left, 0.01))
            batch: list[tuple[Sensor, SpoolEvent]] = []
            while pending and len(batch) < BATCH:
                batch.append(pending.popleft())
            self.write(batch)

    def write(self, batch: list[tuple[Sensor, SpoolEvent]]) -> None:
        sensors = {item.event_id: sensor for sensor, item in batch}
        ceiling = int(self.spool.max_bytes * self.spool_share)
        try:
            queued, refused = self.spool.enqueue_telemetry([item for _, item in batch], ceiling)
        except LocalError as exc:
            for sensor, n in Counter(sensor for sensor, _ in batch).items():
                sensor.counters.add("dropped_spool", n)
            self._warn("spool-error", f"sensors: {exc.message}; {len(batch)} event(s) dropped")
            return
        except Exception:
            for sensor, n in Counter(sensor for sensor, _ in batch).items():
                sensor.counters.add("dropped_spool", n)
            log.exception("sensors: writing %d event(s) to the spool crashed", len(batch))
            return
        # One counter update per sensor and batch, not per event (each takes a lock).
        produced: Counter[Sensor] = Counter(sensors[item.event_id] for item in queued)
        for sensor, n in produced.items():
            sensor.counters.add("produced", n)
        lost: Counter[Sensor] = Counter(sensors[item.event_id] for item in refused)
        for sensor, n in lost.items():
            sensor.counters.add("dropped_spool", n)
        if refused:
            self._warn(
                "spool-full",
                f"sensors: the spool is at its telemetry share ({ceiling} bytes); "
                f"{len(refused)} event(s) dropped",
            )
        if queued:
            self.on_queued()

    def _warn(self, key: str, text: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(key, -WARN_EVERY) >= WARN_EVERY:
            self._warned[key] = now
            log.warning("%s (counted in sensor_health)", text)
