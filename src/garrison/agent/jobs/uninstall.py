"""Uninstall: only with the server's per-station token (common/uninstall_token.py), from
the Uninstall job (the server adds it when it hands the job out) or ``garrison-agent
uninstall --token``.  The token is checked offline against the content keys pinned at
enrollment: signature, this station's uuid and agent id, the server id, the expiry.  A
wrong token is refused and reported (``agent_deinstalled`` with ``state`` false); after a
good one, ``agent_deinstalled`` (``state`` true) is sent, then isolation is lifted, the
daemon stopped and the state dir (credentials, spool, quarantine, signatures) removed."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import signal
import time

from garrison.agent import isolation
from garrison.agent.content import wire
from garrison.agent.content.errors import ContentRefused
from garrison.agent.content.keys import TrustStore
from garrison.agent.context import Agent
from garrison.agent.errors import AgentError, ExitCode, JobError
from garrison.agent.jobstore import Job
from garrison.common import uninstall_token

log = logging.getLogger("garrison.agent.uninstall")
DAEMON_STOP_SECONDS = 30


class UninstallRefused(JobError):
    """The token is missing, wrong, for another station or expired."""

    exit_code = ExitCode.JOB_FAILED


def check_token(agent: Agent, token: object) -> None:
    if not isinstance(token, str) or not token:
        raise UninstallRefused("uninstall refused: the server's uninstall token is required")
    try:
        statement, signed, signature = uninstall_token.decode(token)
    except uninstall_token.TokenError as exc:
        raise UninstallRefused(f"uninstall refused: {exc}") from None
    trust = TrustStore.load(agent.state)
    creds = agent.credentials()
    now = dt.datetime.now(dt.UTC)
    try:
        trust.verify(str(statement.get("key_id")), signature, signed, now)
        expires = wire.parse_time(statement.get("expires"), "the token's expiry")
    except ContentRefused as exc:
        raise UninstallRefused(f"uninstall refused: the token does not verify ({exc})") from None
    if statement.get("server_id") != trust.server_id:
        raise UninstallRefused("uninstall refused: the token is from another server")
    if statement.get("station_uuid") != agent.uuid or statement.get("agent_id") != creds.agent_id:
        raise UninstallRefused("uninstall refused: the token is for another station")
    if now > expires:
        raise UninstallRefused("uninstall refused: the token has expired")


def report(agent: Agent, ok: bool, message: str = "") -> None:
    try:
        agent.event("agent_deinstalled", {"state": ok, "message": message[:1000]})
    except AgentError as exc:
        log.warning("agent_deinstalled: %s", exc.message)


def authorise(agent: Agent, token: object) -> None:
    """Check the token; a refusal is reported to the server and raised."""
    try:
        check_token(agent, token)
    except UninstallRefused as exc:
        log.warning("%s", exc.message)
        report(agent, False, exc.message)
        raise
    agent.uninstall_requested = True
    report(agent, True)


def handle(agent: Agent, job: Job) -> str:
    authorise(agent, job.obj.get("token") if isinstance(job.obj, dict) else None)
    return "uninstalling: the agent stops and removes its state"


def daemon_pid(agent: Agent) -> int | None:
    try:
        pid = int(agent.state.pid_file.read_text().strip())
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()  # noqa: SIM115
    except (OSError, ValueError):
        return None
    return pid if b"garrison" in cmdline and pid != os.getpid() else None


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited daemon its parent has not reaped yet)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


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
        # Its shutdown writes into the state dir: removed before it ends, the dir would
        # come back.
        deadline = time.monotonic() + DAEMON_STOP_SECONDS
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    agent.stop_requested.set()
    agent.close()
    shutil.rmtree(agent.state.path, ignore_errors=True)
