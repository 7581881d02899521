"""What ``garrison-agent run`` starts: the sensors, their emitter, the health event.

Started with the defaults of ``[sensors]`` in agent.toml (all on), no flag needed.  A sensor
that cannot run is reported ``failed`` with its reason (not root: "needs root"), in the log
and in ``sensor_health``, which is sent at start, whenever a sensor's state changes and
every ``health_interval`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from garrison.agent.config import SensorsConfig
from garrison.agent.errors import AgentError
from garrison.agent.sensors.base import Sensor, SensorState
from garrison.agent.sensors.drivers import DriverSensor
from garrison.agent.sensors.emitter import Emitter
from garrison.agent.sensors.files import FileSensor
from garrison.agent.sensors.hashes import HashCache
from garrison.agent.sensors.modules import ModuleSensor
from garrison.agent.sensors.oslog import OsLogSensor
from garrison.agent.sensors.ports import PortSensor
from garrison.agent.sensors.process import ProcessSensor
from garrison.agent.sensors.utmp import TerminalSensor
from garrison.agent.spool import Spool

log = logging.getLogger("garrison.agent.sensors")

HEALTH_EVENT = "sensor_health"
# The sensors this agent has, by name: a factory from the configuration and the shared
# hash cache.  A new sensor (file, port, module, driver, os-log, terminal) is one entry here
# and one switch in SensorsConfig.
Factory = Callable[[SensorsConfig, HashCache], Sensor]
FACTORIES: dict[str, Factory] = {
    "process": lambda cfg, hashes: ProcessSensor(hashes, cfg.redact, cfg.netlink_rcvbuf),
    # -- files, kernel modules, shared libraries ------------------------------------------
    "file": lambda cfg, hashes: FileSensor(
        hashes, cfg.file_paths, cfg.file_exclude, cfg.file_hash_wait
    ),
    "driver": lambda cfg, hashes: DriverSensor(hashes, cfg.driver_interval),
    "module": lambda cfg, hashes: ModuleSensor(
        hashes, cfg.module_delay, cfg.module_late, cfg.module_dedupe
    ),
    # -- end of files, kernel modules, shared libraries -----------------------------------
    # -- listening ports, OS log, terminal sessions --
    "ports": lambda cfg, hashes: PortSensor(hashes, cfg.port_interval),
    "os_log": lambda cfg, _: OsLogSensor(cfg.os_log_source, cfg.os_log_path, cfg.os_log_journalctl),
    "terminal": lambda cfg, _: TerminalSensor(cfg.utmp_path),
    # -- end of listening ports, OS log, terminal sessions --
}
# Sensors that read the kernel's own event sources (what KERNEL_ACQ_AVAILABLE means).
KERNEL_SENSORS = ("process", "file")


class SensorRunner:
    def __init__(
        self,
        config: SensorsConfig,
        spool: Spool,
        send_event: Callable[[str, dict[str, Any], str], object],
        on_queued: Callable[[], None] = lambda: None,
        factories: dict[str, Factory] | None = None,
    ) -> None:
        """``send_event(type, data, id)`` queues the health event (the agent's ``event``)."""
        self.config = config
        self.send_event = send_event
        self.hashes = HashCache(config.hash_inline_max, config.hash_max_size)
        self.emitter = Emitter(
            spool, config.rate_per_second, config.burst, config.spool_share, on_queued
        )
        self.sensors: list[Sensor] = [
            make(config, self.hashes) for make in (factories or FACTORIES).values()
        ]
        for sensor in self.sensors:
            sensor.connect(self.sensors)
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_states: list[tuple[str, str]] = []

    def _enabled(self, sensor: Sensor) -> bool:
        return bool(self.config.enabled and getattr(self.config, sensor.name, True))

    def start(self) -> None:
        self.emitter.start()
        for sensor in self.sensors:
            if not self._enabled(sensor):
                sensor.disable("turned off in [sensors] of agent.toml")
                continue
            sensor.start(self.emitter)
        self.report()
        self._thread = threading.Thread(target=self._health, name="sensor-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for sensor in self.sensors:
            try:
                sensor.stop()
            except Exception:
                log.exception("stopping sensor %s crashed", sensor.name)
        self.emitter.stop()
        self.hashes.close()
        self.report()

    @property
    def kernel_acq_available(self) -> bool:
        return any(
            s.name in KERNEL_SENSORS and s.state == SensorState.RUNNING for s in self.sensors
        )

    def health(self) -> dict[str, Any]:
        """The ``sensor_health`` event's data: one indexed row per sensor."""
        data: dict[str, Any] = {"time": time.time(), "started_at": self.started_at}
        statuses = [s.status() for s in self.sensors]
        for index, status in enumerate(statuses):
            for key, value in status.items():
                data[f"{key}_{index}"] = value
        data["count"] = len(statuses)
        return data

    def report(self) -> None:
        self._last_states = [(s.name, str(s.state)) for s in self.sensors]
        try:
            self.send_event(HEALTH_EVENT, self.health(), uuid.uuid4().hex)
        except AgentError as exc:
            log.warning("sensor_health: %s", exc.message)

    def _health(self) -> None:
        next_report = time.monotonic() + self.config.health_interval
        while not self._stop.wait(0.5):
            changed = [(s.name, str(s.state)) for s in self.sensors] != self._last_states
            if changed or time.monotonic() >= next_report:
                self.report()
                next_report = time.monotonic() + self.config.health_interval
