"""What ``garrison-agent run`` starts for prevention: the listener, kept in line with the
``[on_access]`` configuration and the content in force, and its reports.

A control thread looks twice a second at the engine's database (the signed content swaps
it in one assignment) and the configuration: a new database with the same marks is handed
to the listener in one assignment (its verdict cache empties itself); a change of what
must be marked (on-access turned on or off, the block list becoming empty or not, other
paths or scope) replaces the listener.  Nothing is marked while there is nothing to
decide: an empty block list and on-access off leave every filesystem alone.

Reports go through the agent's spool, never on the answering path: a block is
``process_start_blocked`` or ``file_open_blocked`` plus ``preventive_protection_report``
(for the Dr.Web procedure); an on-access detection is an Alert (the server's
``threat_detected``) after the configured action; the listener's state and counters are
``prevention_status`` and, in State, ``avdetails``.
"""

from __future__ import annotations

import logging
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

from garrison.agent import host
from garrison.agent.config import OnAccessConfig
from garrison.agent.context import Agent
from garrison.agent.errors import AgentError
from garrison.agent.prevention import scope
from garrison.agent.prevention.decide import Decider
from garrison.agent.prevention.listener import Decision, Listener
from garrison.agent.scan import actions
from garrison.agent.scan.engine import Detection
from garrison.agent.scan.signatures import SignatureDB
from garrison.agent.sensors import procinfo
from garrison.agent.sensors.hashes import HashCache

log = logging.getLogger("garrison.agent.prevention")

CONTROL_SECONDS = 0.5
FAIL_OPEN_REPORT_SECONDS = 5.0
HANDLED = 4096
HIPS_PROCESS_START = 1  # preventive_protection_report hips_type: the code Garrison uses
HIPS_FILE_OPEN = 2


def _shape(config: OnAccessConfig, db: SignatureDB) -> tuple[Any, ...]:
    return (
        config.enabled,
        tuple(config.paths),
        config.blocking and not db.blocklist.empty,
        tuple(config.exec_scope),
        config.deadline,
        config.max_file_size,
        config.verdict_cache,
    )


class Prevention:
    def __init__(
        self,
        agent: Agent,
        hashes: HashCache | None = None,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.agent = agent
        self.on_queued = on_queued
        self.hashes = hashes or HashCache(8 * 1024 * 1024, 2048 * 1024 * 1024)
        self.listener: Listener | None = None
        self.state = "stopped"
        self.reason = ""
        self._shape: tuple[Any, ...] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fail_open_seen = 0
        self._fail_open_at = 0.0
        self._handled: dict[tuple[str, str, float], str] = {}
        self._handled_lock = threading.Lock()
        self._host = host.hostname()
        self._os = host.platform_name()
        agent.prevention_status = self.avdetails

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._apply()
        self._thread = threading.Thread(target=self._control, name="prevention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
        self.state = "stopped"
        self.report()

    def _control(self) -> None:
        while not self._stop.wait(CONTROL_SECONDS):
            try:
                self._apply()
                self._fail_open_report()
            except Exception:
                log.exception("prevention control crashed; retrying")

    def _apply(self) -> None:
        config = self.agent.config.on_access
        db = self.agent.signatures
        shape = _shape(config, db)
        listener = self.listener
        if listener is not None and listener.state == "failed":
            self.state, self.reason = "failed", listener.reason
            listener.stop()
            self.listener, self._shape = None, None
            self.report()
            return  # tried again at the next control round
        if shape == self._shape:
            if listener is not None and listener.db is not db:
                listener.db = db
            return
        if listener is not None:
            listener.stop()
            self.listener = None
        self._shape = shape
        exec_paths = scope.resolve(config.exec_scope) if shape[2] else []
        watch = scope.resolve(config.paths) if config.enabled else []
        if not exec_paths and not watch:
            self.state, self.reason = "idle", "nothing to mark (empty block list, on-access off)"
            self.report()
            return
        decider = Decider(
            self.hashes, self.agent.config.scan, config.max_file_size, config.deadline
        )
        fresh = Listener(
            decider,
            db,
            exec_paths=exec_paths,
            watch_paths=watch,
            scan=config.enabled,
            deadline=config.deadline,
            verdict_cache=config.verdict_cache,
            on_decision=self.on_decision,
        )
        try:
            fresh.start()
        except OSError as exc:
            self.state, self.reason = "failed", f"cannot mark: {exc}"
            log.error("prevention: %s", self.reason)
            self.report()
            return
        self.listener, self.state, self.reason = fresh, "running", ""
        log.info("prevention running: marked %s", ", ".join(fresh.marked))
        self.report()

    # -- status ------------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        return self.listener.status() if self.listener is not None else {}

    def status(self) -> dict[str, Any]:
        config = self.agent.config.on_access
        db = self.agent.signatures
        counters = self.counters()
        data: dict[str, Any] = {
            "time": time.time(),
            "state": self.state,
            "on_access": config.enabled,
            "blocking": config.blocking and not db.blocklist.empty,
            "marked": ";".join(self.listener.marked) if self.listener else "",
            "blocklist_records": len(db.blocklist),
            "deadline_ms": config.deadline * 1000,
        }
        if self.reason:
            data["reason"] = self.reason
        for key in (
            "decisions",
            "cached",
            "denied",
            "fail_open",
            "fail_open_deadline",
            "fail_open_queue",
            "yara_timeouts",
            "unreadable",
            "scans_after_write",
            "overflows",
        ):
            data[key] = counters.get(key, 0)
        return data

    def avdetails(self) -> dict[str, str]:
        data = self.status()
        return {
            "on_access": "1" if data["on_access"] else "0",
            "prevention_state": str(data["state"]),
            "prevention_denied": str(data["denied"]),
            "prevention_fail_open": str(data["fail_open"]),
        }

    def report(self) -> None:
        try:
            self.agent.event("prevention_status", self.status())
            self.on_queued()
        except AgentError as exc:
            log.warning("prevention_status: %s", exc.message)

    def _fail_open_report(self) -> None:
        failed = self.counters().get("fail_open", 0)
        now = time.monotonic()
        if failed > self._fail_open_seen and now - self._fail_open_at >= FAIL_OPEN_REPORT_SECONDS:
            log.warning("prevention: %d decision(s) failed open", failed - self._fail_open_seen)
            self._fail_open_seen, self._fail_open_at = failed, now
            self.report()

    # -- reports -----------------------------------------------------------------------------

    def _actor(self, pid: int) -> dict[str, Any]:
        out: dict[str, Any] = {"pid": pid}
        ids = procinfo.read_ids(pid)
        if ids is not None:
            out["user"] = procinfo.user_name(ids.uid)
        return out

    def _file(self, d: Decision, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {
            f"{prefix}file_name": d.path.rsplit("/", 1)[-1],
            f"{prefix}file_path": d.path,
            f"{prefix}full_name": d.path,
            f"{prefix}size": d.size,
            f"{prefix}modified_at": d.mtime,
        }
        if d.verdict.md5:
            out[f"{prefix}md5"] = d.verdict.md5
        if d.verdict.sha256:
            out[f"{prefix}sha256"] = d.verdict.sha256
        return out

    def on_decision(self, d: Decision) -> None:
        """A deny or a detection (the listener's reporter thread)."""
        verdict = d.verdict
        if d.kind in ("exec", "open"):
            self._blocked(d)
        if verdict.reason == "threat":
            self._detected(d)

    def _blocked(self, d: Decision) -> None:
        now = time.time()
        data: dict[str, Any] = {"time": now, "host": self._host, "os": self._os}
        data.update(self._file(d))
        data.update(self._actor(d.pid))
        data["file_owner"] = procinfo.user_name(d.uid)
        data["file_group"] = procinfo.group_name(d.gid)
        data["file_permissions"] = f"{stat.S_IMODE(d.mode):04o}"
        data["block_reason"] = d.verdict.reason
        data["block_rule"] = d.verdict.rule[:1024]
        exe = (procinfo.read_link(d.pid, "exe") or "").removesuffix(" (deleted)")
        if d.kind == "exec":
            # Before the exec completes /proc still shows the process that asked for it.
            cmdline = procinfo.read_cmdline(d.pid)
            if cmdline:
                data["command_line"] = cmdline
            kind = "process_start_blocked"
        else:
            data["checksum_type"] = 1
            if exe:
                data["exe_file_name"] = exe.rsplit("/", 1)[-1]
                data["exe_file_path"] = exe
                data["exe_full_name"] = exe
            stat_ = procinfo.read_stat(d.pid)
            if stat_ is not None and stat_.ppid > 0:
                data["parent_pid"] = stat_.ppid
                parent = (procinfo.read_link(stat_.ppid, "exe") or "").removesuffix(" (deleted)")
                if parent:
                    data["parent_file_name"] = parent.rsplit("/", 1)[-1]
                    data["parent_file_path"] = parent
                    data["parent_full_name"] = parent
            kind = "file_open_blocked"
        self.agent.event(kind, data)
        report: dict[str, Any] = {
            "time": now,
            "pid": d.pid,
            "target_path": d.path,
            "hips_type": HIPS_PROCESS_START if d.kind == "exec" else HIPS_FILE_OPEN,
            "denied": True,
            "is_user_action": False,
            "event_count": 1,
            "hashdb": d.verdict.rule[:255] if d.verdict.reason == "blocklist" else "on-access",
        }
        if exe:
            report["path"] = exe
        if "user" in data:
            report["event_user"] = data["user"]
        if d.verdict.sha256:
            report["sha256"] = d.verdict.sha256
        self.agent.event("preventive_protection_report", report)
        self.on_queued()

    def _detected(self, d: Decision) -> None:
        """Act per ``[on_access] action`` once per file version, then send the Alert."""
        key = (d.path, d.verdict.sha256, d.mtime)
        with self._handled_lock:
            if key in self._handled:
                return
            self._handled[key] = "pending"
            while len(self._handled) > HANDLED:
                self._handled.pop(next(iter(self._handled)))
        detection = Detection(
            d.path, d.verdict.rule, d.verdict.module, d.verdict.sha256, d.verdict.sha256, d.size
        )
        for problem in actions.apply(
            [detection], self.agent.config.on_access.action, self.agent.quarantine
        ):
            log.warning("on-access: %s", problem)
        alert = {
            "name": detection.threat,
            "filepath": detection.path,
            "action": detection.action,
            "module_name": detection.module or "garrison-hash",
            "detection_time": detection.detection_time,
            "info": {"sha256": detection.sha256, "size": detection.size, "on_access": d.kind},
        }
        self.agent.send("alerts", "Alerts", {"alerts": [alert]})
        self.on_queued()
        log.warning("on-access: %s in %s (%s)", detection.threat, d.path, detection.action)
