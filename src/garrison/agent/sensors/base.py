"""The sensor interface: start, stop, a status, and counters nothing escapes.

A sensor either runs or says why not (``failed`` with a reason, in the agent log and in the
``sensor_health`` event): there is no silent no-op.  Every event it sees is either queued
(``produced``) or counted in one drop counter; what the kernel lost before the sensor saw it
is counted in ``overflows``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("garrison.agent.sensors")


class SensorState(StrEnum):
    STOPPED = "stopped"  # not started yet, or stopped by the agent
    RUNNING = "running"
    FAILED = "failed"
    DISABLED = "disabled"  # turned off by configuration


class SensorUnavailableError(Exception):
    """The sensor cannot start here; the message is the reason shown in its status."""


@dataclass
class Counters:
    produced: int = 0
    dropped_rate_limit: int = 0
    dropped_queue: int = 0
    dropped_spool: int = 0
    overflows: int = 0
    # Not a loss: events the policy's exclusions keep from being sent.
    excluded: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    @property
    def dropped(self) -> int:
        return self.dropped_rate_limit + self.dropped_queue + self.dropped_spool

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "produced": self.produced,
                "dropped": self.dropped,
                "dropped_rate_limit": self.dropped_rate_limit,
                "dropped_queue": self.dropped_queue,
                "dropped_spool": self.dropped_spool,
                "overflows": self.overflows,
                "excluded": self.excluded,
            }


class Sink(Protocol):
    """Where a sensor sends its events (the emitter): rate-limited, counted, never blocking."""

    def submit(
        self,
        sensor: Sensor,
        event_type: str,
        data: dict[str, Any],
        event_id: str,
        when: float,
    ) -> bool: ...

    def allow(self, sensor: Sensor) -> bool: ...


class Sensor:
    """Subclasses set ``name`` and implement :meth:`_start` (raise
    :class:`SensorUnavailableError` with the reason) and :meth:`_stop`."""

    name = "sensor"

    def __init__(self) -> None:
        self.counters = Counters()
        self.state = SensorState.STOPPED
        self.reason = ""
        self._state_lock = threading.Lock()
        # The sensor's own thread, for the sensors that run one (_run_thread / _end_thread).
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def _run_thread(self, target: Callable[[], None], name: str) -> None:
        """Start the sensor's thread (``_stop_event`` cleared: it runs until it is set)."""
        self._stop_event.clear()
        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()

    def _end_thread(self) -> None:
        """Ask the sensor's thread to stop and wait for it (at most 5 s)."""
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def start(self, sink: Sink) -> bool:
        """True when running; otherwise the status says why, and the log does too."""
        try:
            self._start(sink)
        except SensorUnavailableError as exc:
            self.fail(str(exc))
            return False
        except OSError as exc:
            self.fail(f"{exc.strerror or exc}")
            return False
        self._set(SensorState.RUNNING, "")
        log.info("sensor %s running", self.name)
        return True

    def stop(self) -> None:
        if self.state == SensorState.RUNNING:
            self._stop()
            self._set(SensorState.STOPPED, "")

    def fail(self, reason: str) -> None:
        self._set(SensorState.FAILED, reason)
        log.error("sensor %s failed: %s", self.name, reason)

    def disable(self, reason: str) -> None:
        self._set(SensorState.DISABLED, reason)
        log.info("sensor %s disabled: %s", self.name, reason)

    def _set(self, state: SensorState, reason: str) -> None:
        with self._state_lock:
            self.state, self.reason = state, reason

    def use_state(self, directory: Path) -> None:
        """Where the sensor may keep what must outlive the agent (the agent's state dir);
        nothing by default."""

    def connect(self, sensors: Sequence[Sensor]) -> None:
        """Hook up to the agent's other sensors before any starts (the module sensor
        listens to the process sensor's execs); nothing by default."""

    def disconnect(self, sensors: Sequence[Sensor]) -> None:
        """Undo :meth:`connect` before this sensor is replaced (a new policy); nothing by
        default."""

    def _start(self, sink: Sink) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    # -- status ------------------------------------------------------------------------------

    def extra_status(self) -> dict[str, int]:
        """Sensor-specific gauges for the health event (e.g. hashes pending)."""
        return {}

    def status(self) -> dict[str, Any]:
        with self._state_lock:
            state, reason = self.state, self.reason
        out: dict[str, Any] = {"sensor": self.name, "state": str(state)}
        if reason:
            out["reason"] = reason
        out.update(self.counters.snapshot())
        out.update(self.extra_status())
        return out
