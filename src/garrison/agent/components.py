"""The agent's components as Dr.Web reports its own: ``component_started`` when one starts
(pid, engine, records, user, time) and ``component_completed`` when it ends (threats
found, errors, exit code); a scan's errors as ``station_scan_error``, one per object; and
``station_status``, the agent's local policy (does it send events, accept jobs, accept
updates), at each daemon start.

Component numbers (Dr.Web's ``component``): the scanner 1, on-access 2, the sensors 3,
device control 4.  A component that runs for the daemon's life completes when the daemon
stops (exit code 0) or when it fails (1).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from garrison import __version__
from garrison.agent.context import Agent
from garrison.agent.errors import AgentError
from garrison.agent.scan.engine import ScanResult
from garrison.agent.sensors import procinfo

log = logging.getLogger("garrison.agent.components")

SCANNER, ON_ACCESS, SENSORS, DEVICES = 1, 2, 3, 4
NAMES = {SCANNER: "scanner", ON_ACCESS: "on-access", SENSORS: "sensors", DEVICES: "devices"}
MAX_SCAN_ERRORS = 100  # per scan: the rest are counted in component_completed's errors
# Dr.Web's action code for an object not scanned: its error bit.
ACTION_ERROR = {
    "unreadable": "error:unreadable",
    "archive": "error:archive",
    "timeout": "error:timeout",
}


def _emit(agent: Agent, kind: str, data: dict[str, Any]) -> None:
    try:
        agent.event(kind, data)
    except AgentError as exc:  # the spool is full or gone: the component goes on
        log.warning("%s: %s", kind, exc.message)


def engine_version() -> str:
    return f"garrison {__version__}"


@dataclass
class Run:
    agent: Agent
    component: int
    pid: int
    done: bool = False

    def completed(self, infections: int = 0, errors: int = 0, exitcode: int = 0) -> None:
        if self.done:
            return
        self.done = True
        _emit(
            self.agent,
            "component_completed",
            {
                "component": self.component,
                "pid": self.pid,
                "infections": infections,
                "errors": errors,
                "exitcode": exitcode,
            },
        )


def started(agent: Agent, component: int) -> Run:
    pid = os.getpid()
    data: dict[str, Any] = {
        "component": component,
        "pid": pid,
        "engine": engine_version(),
        "time": time.time(),
    }
    try:
        data["records"] = agent.signatures.records
    except AgentError as exc:
        log.warning("component_started: no engine records: %s", exc.message)
    ids = procinfo.read_ids(pid)
    if ids is not None:
        data["user"] = f"{procinfo.user_name(ids.uid)}:{procinfo.group_name(ids.gid)}"
    _emit(agent, "component_started", data)
    return Run(agent, component, pid)


def scan_errors(agent: Agent, result: ScanResult) -> None:
    """One ``station_scan_error`` per object the scan could not (fully) scan."""
    pid = os.getpid()
    for failure in result.failures[:MAX_SCAN_ERRORS]:
        data: dict[str, Any] = {
            "component": SCANNER,
            "pid": pid,
            "time": time.time(),
            "object": failure.path,
            "action": f"error:{failure.kind}",  # Dr.Web: the error bit set
            "error": failure.reason[:1000],
            "error_kind": failure.kind,
        }
        try:
            st = os.stat(failure.path.split("!", 1)[0])
            data["owner"] = f"{procinfo.user_name(st.st_uid)}:{procinfo.group_name(st.st_gid)}"
        except OSError:
            pass
        _emit(agent, "station_scan_error", data)


def station_status(agent: Agent, events: bool, jobs: bool, updates: bool) -> None:
    _emit(agent, "station_status", {"events": events, "jobs": jobs, "updates": updates})
