"""From sensors to the spool: the rate limit, a bounded queue and one writer thread.

A sensor's reading thread must not wait on the spool's fsync (the kernel would overflow its
socket meanwhile), so it hands each event to a bounded in-memory queue and goes back to the
kernel.  The writer thread queues them into the spool in batches, one transaction each
(``Spool.enqueue_telemetry``).  Every event ends counted once: ``produced`` when the spool
has it, or ``dropped_rate_limit`` / ``dropped_queue`` / ``dropped_spool``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
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
        self._queue: queue.Queue[tuple[Sensor, SpoolEvent]] = queue.Queue(queue_size)
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
        try:
            self._queue.put_nowait(
                (sensor, SpoolEvent(sensor.name, event_type, event_id, when, data))
            )
        except queue.Full:
            sensor.counters.add("dropped_queue")
            self._warn(f"{sensor.name}-queue", f"sensor {sensor.name}: event queue full, dropping")
            return False
        return True

    # -- the writer thread ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sensor-emitter", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.write(batch)

    def write(self, batch: list[tuple[Sensor, SpoolEvent]]) -> None:
        sensors = {item.event_id: sensor for sensor, item in batch}
        ceiling = int(self.spool.max_bytes * self.spool_share)
        try:
            queued, refused = self.spool.enqueue_telemetry([item for _, item in batch], ceiling)
        except LocalError as exc:
            for sensor, _ in batch:
                sensor.counters.add("dropped_spool")
            self._warn("spool-error", f"sensors: {exc.message}; {len(batch)} event(s) dropped")
            return
        except Exception:
            for sensor, _ in batch:
                sensor.counters.add("dropped_spool")
            log.exception("sensors: writing %d event(s) to the spool crashed", len(batch))
            return
        for item in queued:
            sensors[item.event_id].counters.add("produced")
        for item in refused:
            sensors[item.event_id].counters.add("dropped_spool")
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
