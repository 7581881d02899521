"""Uninstall: after the job is reported, lift network isolation, stop the daemon and remove
the state dir (credentials, spool, quarantine, signatures)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal

from garrison.agent import isolation
from garrison.agent.context import Agent
from garrison.agent.jobstore import Job

log = logging.getLogger("garrison.agent.uninstall")


def handle(agent: Agent, job: Job) -> str:
    agent.uninstall_requested = True
    return "uninstalling: the agent stops and removes its state"


def daemon_pid(agent: Agent) -> int | None:
    try:
        pid = int(agent.state.pid_file.read_text().strip())
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()  # noqa: SIM115
    except (OSError, ValueError):
        return None
    return pid if b"garrison" in cmdline and pid != os.getpid() else None


def finish(agent: Agent) -> None:
    """Called once the result is reported (and flushed as far as the server allows)."""
    if isolation.is_isolated(agent.state):
        try:
            isolation.rejoin(agent.state)
        except isolation.IsolationError as exc:
            log.warning("uninstall: could not lift isolation: %s", exc)
    pid = daemon_pid(agent)
    if pid is not None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    agent.stop_requested.set()
    agent.close()
    shutil.rmtree(agent.state.path, ignore_errors=True)
