"""What ``garrison-agent run`` starts: the sensors, their emitter, the health event.

Started with the defaults of ``[sensors]`` in agent.toml (all on), no flag needed.  A sensor
that cannot run is reported ``failed`` with its reason (not root: "needs root"), in the log
and in ``sensor_health``, which is sent at start, whenever a sensor's state changes and
every ``health_interval`` seconds.

The server's sensor policy is applied without a restart (:meth:`SensorRunner.apply_policy`):
the keys it sets override agent.toml's, and only the sensors whose settings changed are
stopped and started again (their counters carry on).  A policy that breaks the rules of
``garrison.common.sensor_policy`` is refused: the previous one stays, and the reason is in
the log and in ``sensor_health`` (``policy_error``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from garrison.agent.config import SensorsConfig
from garrison.agent.errors import AgentError
from garrison.agent.sensors.base import Sensor, SensorState
from garrison.agent.sensors.drivers import DriverSensor
from garrison.agent.sensors.emitter import Emitter
from garrison.agent.sensors.exclusions import Exclusions
from garrison.agent.sensors.files import FileSensor
from garrison.agent.sensors.hashes import HashCache
from garrison.agent.sensors.modules import ModuleSensor
from garrison.agent.sensors.oslog import OsLogSensor
from garrison.agent.sensors.ports import PortSensor
from garrison.agent.sensors.process import ProcessSensor
from garrison.agent.sensors.utmp import TerminalSensor
from garrison.agent.spool import Spool
from garrison.common import sensor_policy

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
# The [sensors] keys each factory reads (besides its switch and "enabled"): a policy that
# changes one of them restarts that sensor, and only that one.
SENSOR_KEYS: dict[str, tuple[str, ...]] = {
    "process": ("redact", "netlink_rcvbuf"),
    "file": ("file_paths", "file_exclude", "file_hash_wait"),
    "driver": ("driver_interval",),
    "module": ("module_delay", "module_late", "module_dedupe"),
    "ports": ("port_interval",),
    "os_log": ("os_log_source", "os_log_path", "os_log_journalctl"),
    "terminal": ("utmp_path",),
}
# A sensor hooked to another (connect) is replaced with it.
DEPENDS_ON: dict[str, tuple[str, ...]] = {"module": ("process",)}
LOCAL_OFF = "turned off in [sensors] of agent.toml"
POLICY_OFF = "turned off by the server's sensor policy"


class SensorRunner:
    def __init__(
        self,
        config: SensorsConfig,
        spool: Spool,
        send_event: Callable[[str, dict[str, Any], str], object],
        on_queued: Callable[[], None] = lambda: None,
        factories: dict[str, Factory] | None = None,
        state_dir: Path | None = None,
    ) -> None:
        """``send_event(type, data, id)`` queues the health event (the agent's ``event``).
        ``config`` is agent.toml's ``[sensors]``: the fallback under any server policy.
        ``state_dir``: where sensors keep what outlives the agent (the process sensor's
        reported processes); None keeps nothing."""
        self.local = config
        self.state_dir = state_dir
        self.config = config
        self.send_event = send_event
        self.hashes = HashCache(config.hash_inline_max, config.hash_max_size)
        self.emitter = Emitter(
            spool, config.rate_per_second, config.burst, config.spool_share, on_queued
        )
        self.emitter.exclusions = Exclusions(config.exclude_processes, config.exclude_hashes)
        self.sensors: list[Sensor] = []
        # Each sensor's factory, by the sensor's name: a new policy may need a fresh one.
        self._factories: dict[str, Factory] = {}
        for make in (factories or FACTORIES).values():
            sensor = self._make(make, config)
            self.sensors.append(sensor)
            self._factories[sensor.name] = make
        for sensor in self.sensors:
            sensor.connect(self.sensors)
        self.started_at = time.time()
        # The server's policy in force: its settings (the keys it sets) and version.
        self.policy: dict[str, Any] = {}
        self.policy_version = ""
        self.policy_error = ""
        self._running = False
        self._reconfigure_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_states: list[tuple[str, str]] = []

    def _make(self, make: Factory, config: SensorsConfig) -> Sensor:
        sensor = make(config, self.hashes)
        if self.state_dir is not None:
            sensor.use_state(self.state_dir)
        return sensor

    def _enabled(self, sensor: Sensor) -> bool:
        return bool(self.config.enabled and getattr(self.config, sensor.name, True))

    def _off_reason(self, sensor: Sensor) -> str:
        by_policy = self.policy.get("enabled") is False or self.policy.get(sensor.name) is False
        return POLICY_OFF if by_policy else LOCAL_OFF

    def _start_one(self, sensor: Sensor) -> None:
        if not self._enabled(sensor):
            sensor.disable(self._off_reason(sensor))
            return
        try:
            sensor.start(self.emitter)
        except Exception as exc:
            # One sensor's bug must not leave the others (or a new policy) half started.
            log.exception("starting sensor %s crashed", sensor.name)
            sensor.fail(f"crashed at start: {type(exc).__name__}")

    def start(self) -> None:
        self.emitter.start()
        with self._reconfigure_lock:
            self._running = True
            for sensor in self.sensors:
                self._start_one(sensor)
        self.report()
        self._thread = threading.Thread(target=self._health, name="sensor-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        with self._reconfigure_lock:
            self._running = False
            for sensor in self.sensors:
                self._stop_one(sensor)
        self.emitter.stop()
        self.hashes.close()
        self.report()

    @staticmethod
    def _stop_one(sensor: Sensor) -> None:
        try:
            sensor.stop()
        except Exception:
            log.exception("stopping sensor %s crashed", sensor.name)

    # -- the server's policy -----------------------------------------------------------------

    def apply_policy(self, settings: Any, version: str) -> bool:
        """Apply the server's policy (the keys it sets over agent.toml's); False when it is
        refused, the previous policy staying in force and the reason reported."""
        try:
            checked = sensor_policy.validate(settings)
            config = SensorsConfig.model_validate({**self.local.model_dump(), **checked})
        except sensor_policy.PolicyError as exc:
            return self._refuse(version, str(exc))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            return self._refuse(version, f"{where}: {first['msg']}")
        with self._reconfigure_lock:
            changed = self._reconfigure(config, checked)
            self.policy_version, self.policy_error = version, ""
        log.info(
            "sensor policy %s applied%s",
            version or "(none: agent.toml)",
            f"; restarted: {', '.join(changed)}" if changed else "",
        )
        if self._running:  # before start, start reports
            self.report()
        return True

    def _refuse(self, version: str, reason: str) -> bool:
        self.policy_error = f"policy {version or '(no version)'} refused: {reason}"
        log.error("sensor %s; the previous policy stays", self.policy_error)
        if self._running:
            self.report()
        return False

    def _inputs(self, config: SensorsConfig, policy: dict[str, Any], name: str) -> tuple[Any, ...]:
        keys = ("enabled", name, *SENSOR_KEYS.get(name, ()))
        off_by_policy = policy.get("enabled") is False or policy.get(name) is False
        return (*(getattr(config, key, None) for key in keys), off_by_policy)

    def _reconfigure(self, config: SensorsConfig, policy: dict[str, Any]) -> list[str]:
        """Swap in ``config``: replace the sensors whose inputs changed (and those hooked to
        them), keep the others running untouched.  Returns the names replaced."""
        changed = {
            sensor.name
            for sensor in self.sensors
            if self._inputs(config, policy, sensor.name)
            != self._inputs(self.config, self.policy, sensor.name)
        }
        changed |= {
            s.name for s in self.sensors if any(d in changed for d in DEPENDS_ON.get(s.name, ()))
        }
        self.config, self.policy = config, policy
        self.emitter.set_limits(config.rate_per_second, config.burst)
        self.emitter.exclusions = Exclusions(config.exclude_processes, config.exclude_hashes)
        if not changed:
            return []
        replaced = [s for s in self.sensors if s.name in changed]
        for sensor in reversed(replaced):  # dependents first
            self._stop_one(sensor)
            sensor.disconnect(self.sensors)
        for index, sensor in enumerate(self.sensors):
            if sensor.name in changed:
                fresh = self._make(self._factories[sensor.name], config)
                fresh.counters = sensor.counters  # counters are since the agent started
                self.sensors[index] = fresh
        for sensor in self.sensors:
            if sensor.name in changed:
                sensor.connect(self.sensors)
        if self._running:
            for sensor in self.sensors:
                if sensor.name in changed:
                    self._start_one(sensor)
        return [s.name for s in self.sensors if s.name in changed]

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
        if self.policy_version:
            data["policy_version"] = self.policy_version
        if self.policy_error:
            data["policy_error"] = self.policy_error
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
