"""``garrison-agent run``: the daemon.

- runs the tasks on the Scheduler configuration's cron expressions, and picks up a schedule
  pushed by the server (the Scheduler task fetches it);
- long-polls Getjobs (``wait=30``) in a thread, so an urgent job starts within seconds;
- flushes the spool in a thread, with backoff while the server is away;
- sends STARTING_UP, SHUTTING_DOWN (with ``ts``) and CONNECTED (HOST_NAME, MAC_ADDRESS,
  IS_SEGREGATED) after every (re)connection;
- re-applies saved network isolation at start, and while isolated puts the nftables table
  back when someone removes or changes it (``tamper.IsolationGuard``); stops cleanly on
  SIGTERM/SIGINT, and a start after an unclean stop says so in STARTING_UP;
- checks its state dir's modes at start (``tamper.check_private``);
- applies the server's device rules to USB devices (``prevention/devices.py``);
- reports its components (``component_started`` / ``component_completed``) and its local
  policy (``station_status``) (``components.py``);
- starts the endpoint sensors (``garrison.agent.sensors``, Linux, root) with the
  ``[sensors]`` settings, all on by default; ``KERNEL_ACQ_AVAILABLE`` says whether the
  kernel process sensor runs;
- fetches the server's sensor policy at each check-in (after every Getjobs poll) and has
  the sensors apply it without a restart (``tasks/sensorpolicy.py``);
- updates the signed content when a check-in announces another manifest (and once at
  start), in its own thread so that polling and scanning go on meanwhile
  (``content/sync.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from garrison.agent import components, host, isolation, samples, tamper
from garrison.agent.content import sync as contentsync
from garrison.agent.content.wire import Announcement
from garrison.agent.context import Agent
from garrison.agent.errors import AgentError, RefusedError
from garrison.agent.prevention.devices import DeviceControl
from garrison.agent.prevention.runner import Prevention
from garrison.agent.schedule import CronSchedule
from garrison.agent.sensors.runner import SensorRunner
from garrison.agent.spool import backoff_delay, retry_delay
from garrison.agent.tasks import avconfig, getjobs, runjobs, scheduler, sensorpolicy, state
from garrison.agent.upgrade import versions

log = logging.getLogger("garrison.agent.daemon")


class Daemon:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.stop = agent.stop_requested
        self.run_jobs_now = threading.Event()
        self.flush_now = threading.Event()
        self.connected = False
        self._connected_lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.sensors: SensorRunner | None = None
        self.prevention: Prevention | None = None
        self.devices: DeviceControl | None = None
        self.guard: tamper.IsolationGuard | None = None
        self.runs: list[components.Run] = []
        self.marker = tamper.RunMarker(agent.state)
        self._refused_policy = ""
        self.content_now = threading.Event()
        self._announced: Announcement | None = None

    # -- connection state ------------------------------------------------------------------

    def _mark(self, ok: bool) -> None:
        with self._connected_lock:
            was, self.connected = self.connected, ok
        if ok and not was:
            data: dict[str, object] = {
                "HOST_NAME": host.hostname(),
                "IS_SEGREGATED": 1 if isolation.is_isolated(self.agent.state) else 0,
                "KERNEL_ACQ_AVAILABLE": 1
                if self.sensors and self.sensors.kernel_acq_available
                else 0,
            }
            mac = host.mac_address()
            if mac:
                data["MAC_ADDRESS"] = mac
            self.agent.event("CONNECTED", data)
            self.flush_now.set()
            log.info("connected to %s", self.agent.server_url)
        elif was and not ok:
            log.warning("lost the server %s; sending is queued", self.agent.server_url)

    # -- threads -----------------------------------------------------------------------------

    def _flusher(self) -> None:
        while not self.stop.is_set():
            try:
                result = self.agent.flush(force=False)
                if result.error is None:
                    self._mark(True)
                    if samples.waiting(self.agent):  # their alerts are on the server now
                        samples.upload_pending(self.agent)
                elif not isinstance(result.error, RefusedError):
                    self._mark(False)
                for problem in result.problems:
                    log.warning("dropped a message the server refused: %s", problem)
            except AgentError as exc:
                log.warning("spool flush: %s", exc.message)
            except Exception:
                log.exception("spool flush crashed; retrying")
            self.flush_now.wait(5)
            self.flush_now.clear()

    def _poller(self) -> None:
        failures = 0
        self._sensor_policy()  # at start too, not only after the first (long) poll
        while not self.stop.is_set():
            wait = self.agent.config.daemon.long_poll
            try:
                checkin = getjobs.check_in(self.agent, wait=wait)
                failures = 0
                self._mark(True)
                if versions.confirm(self.agent.state) is not None:
                    self.run_jobs_now.set()  # the UpgradeAgent job is answered now
                if checkin.jobs:
                    self.flush_now.set()  # their CLOUD_NOTIFICATION receipts go out now
                    self.run_jobs_now.set()
                if checkin.content is not None:
                    self._announced = checkin.content
                    self.content_now.set()
                self._sensor_policy()
            except AgentError as exc:
                failures += 1
                if not isinstance(exc, RefusedError):
                    self._mark(False)
                log.warning("Getjobs: %s", exc.message)
                self.stop.wait(retry_delay(exc, failures))
            except Exception:
                failures += 1
                log.exception("Getjobs crashed; retrying")
                self.stop.wait(backoff_delay(failures))
            if not wait:
                self.stop.wait(5)

    def _content(self) -> None:
        """Signed content: once at start (the server may have moved on while the agent was
        stopped), then whenever a check-in announces a manifest other than the one in force."""
        first = True
        while not self.stop.is_set():
            if not first:
                self.content_now.wait(1.0)
                if not self.content_now.is_set():
                    continue
                self.content_now.clear()
            try:
                if first:
                    outcome: contentsync.Outcome | None = contentsync.update(self.agent)
                else:
                    outcome = contentsync.on_checkin(self.agent, self._announced)
            except AgentError as exc:
                log.warning("signed content: %s", exc.message)
                outcome = None
            except Exception:
                log.exception("the signed content update crashed; the previous content stays")
                outcome = None
            first = False
            if outcome is not None and outcome.status != "unchanged":
                self.flush_now.set()  # its State or station_update_failed goes out now

    def _start(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    # -- tasks --------------------------------------------------------------------------------

    def _task(self, name: str) -> None:
        try:
            if name == "Getjobs":
                if getjobs.run(self.agent):
                    self.run_jobs_now.set()
            elif name == "Runjobs":
                self._runjobs()
            elif name == "State":
                state.run(self.agent)
            elif name == "Alerts":
                self.flush_now.set()
            elif name == "AVConfig":
                for problem in avconfig.run(self.agent):
                    log.warning("AVConfig: %s", problem)
            elif name == "Scheduler":
                for problem in scheduler.run(self.agent):
                    log.warning("Scheduler: %s", problem)
        except AgentError as exc:
            log.warning("%s: %s", name, exc.message)
        except Exception:
            log.exception("%s crashed", name)
        self.flush_now.set()

    def _runjobs(self) -> None:
        self.run_jobs_now.clear()
        summary = runjobs.run(self.agent)
        for outcome in summary.outcomes:
            log.info(
                "job %d (%s): code %d, %s",
                outcome.job.id,
                outcome.job.type,
                outcome.code,
                outcome.message,
            )
        if self.agent.uninstall_requested:
            runjobs.finish_uninstall(self.agent)
        if self.agent.restart_requested:
            log.info("restarting into the version an UpgradeAgent job installed")
            self.stop.set()

    # -- main ---------------------------------------------------------------------------------

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        self.stop.set()
        self.run_jobs_now.set()

    def run(self) -> int:
        agent = self.agent
        agent.credentials()  # not enrolled: fail now, with the clear message
        tamper.check_private(agent.state)  # narrows what is too wide; refuses a foreign file
        agent.restart_possible = True
        pending = versions.record(agent.state)
        if pending is not None and not pending.get("reported"):
            self.run_jobs_now.set()  # an UpgradeAgent job waits for its answer
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)
        agent.state.write_json(agent.state.pid_file, os.getpid())
        try:
            if isolation.reapply(agent.state):
                log.info("network isolation re-applied")
        except isolation.IsolationError as exc:
            log.error("could not re-apply network isolation: %s", exc)
        agent.event("STARTING_UP", {"ts": int(time.time()), **self.marker.begin()})
        components.station_status(
            agent, events=agent.config.sensors.enabled, jobs=True, updates=True
        )
        self.guard = tamper.IsolationGuard(agent.state, agent.event, self.flush_now.set)
        self.guard.start()
        self._start_sensors()
        self._start_prevention()
        self._start_devices()
        self._start("flusher", self._flusher)
        self._start("poller", self._poller)
        self._start("content", self._content)
        for name in ("Scheduler", "AVConfig", "State"):
            if self.stop.is_set():
                break
            self._task(name)
        schedule = CronSchedule(agent.config.scheduler, time.time())
        while not self.stop.is_set():
            if self.run_jobs_now.is_set():
                self._task("Runjobs")
                continue
            for name in schedule.due(time.time()):
                self._task(name)
                if self.stop.is_set():
                    break
            if agent.config.scheduler != schedule.entries:
                log.info("schedule changed: %s", agent.config.scheduler)
                schedule = CronSchedule(agent.config.scheduler, time.time())
            self.run_jobs_now.wait(1.0)
        code = self._shutdown()
        if agent.restart_requested:
            versions.restart(agent.state)  # does not return
        return code

    def _sensor_policy(self) -> None:
        """Fetch the server's sensor policy and apply it if it changed.  A failure to fetch
        keeps what is in force (the next check-in asks again)."""
        sensors = self.sensors
        if sensors is None:
            return
        try:
            policy = sensorpolicy.fetch(self.agent, [sensors.policy_version, self._refused_policy])
        except AgentError as exc:
            log.warning("sensor policy: %s", exc.message)
            return
        if policy is None:
            return
        applied = sensors.apply_policy(policy.settings, policy.version)
        self.flush_now.set()  # the sensor_health saying so goes out now, not at the next flush
        if applied:
            self._refused_policy = ""
            try:
                sensorpolicy.save(self.agent, policy)
            except AgentError as exc:
                log.warning("sensor policy: %s", exc.message)
        else:
            self._refused_policy = policy.version

    def _start_sensors(self) -> None:
        agent = self.agent
        self.sensors = SensorRunner(
            agent.config.sensors,
            agent.spool,
            lambda kind, data, event_id: agent.event(kind, data, event_id=event_id),
            on_queued=self.flush_now.set,
            state_dir=agent.state.path,
        )
        try:
            kept = sensorpolicy.saved(agent)
        except AgentError as exc:
            log.warning("sensor policy: %s", exc.message)
            kept = None
        if kept is not None:
            # The last policy the server gave, until it answers (it may be away).
            self.sensors.apply_policy(kept.settings, kept.version)
        try:
            self.sensors.start()
            self.runs.append(components.started(agent, components.SENSORS))
        except Exception:
            log.exception("starting the sensors crashed; the agent runs without them")

    def _start_prevention(self) -> None:
        """Blocking and on-access scanning ([on_access], the block list in force): it marks
        nothing until there is something to decide (docs/agent.md "Prevention")."""
        hashes = self.sensors.hashes if self.sensors is not None else None
        self.prevention = Prevention(self.agent, hashes, on_queued=self.flush_now.set)
        try:
            self.prevention.start()
            self.runs.append(components.started(self.agent, components.ON_ACCESS))
        except Exception:
            log.exception("starting prevention crashed; the agent runs without it")

    def _start_devices(self) -> None:
        """Device control ([devices]): the server's device rules on USB devices."""
        config = self.agent.config.devices
        if not config.enabled:
            return
        self.devices = DeviceControl(self.agent, Path(config.sysfs_root), self.flush_now.set)
        try:
            self.devices.start()
            self.runs.append(components.started(self.agent, components.DEVICES))
        except Exception:
            log.exception("starting device control crashed; the agent runs without it")

    def _shutdown(self) -> int:
        agent = self.agent
        for part in (self.guard, self.devices):
            if part is not None:
                try:
                    part.stop()
                except Exception:
                    log.exception("stopping %s crashed", type(part).__name__)
        if self.prevention is not None:
            try:
                self.prevention.stop()
            except Exception:
                log.exception("stopping prevention crashed")
        if self.sensors is not None:
            try:
                self.sensors.stop()
            except Exception:
                log.exception("stopping the sensors crashed")
        if agent.state.path.exists():  # gone after Uninstall
            for run in self.runs:
                run.completed()
            agent.event("SHUTTING_DOWN", {"ts": int(time.time())})
            try:
                with agent.transport(timeout=5) as transport:
                    agent.flush(force=True, transport=transport)
            except AgentError as exc:
                log.info("shutting down with messages queued: %s", exc.message)
            with contextlib.suppress(OSError):
                agent.state.pid_file.unlink()
            try:
                self.marker.end()
            except AgentError as exc:
                log.warning("cannot mark the clean stop: %s", exc.message)
        agent.close()
        log.info("stopped")
        return 0
