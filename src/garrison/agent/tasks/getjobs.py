"""Getjobs: ``GET /api/jobs?agent_id=N&antivirus=…&agent_id=N`` (the id really twice, as the
Armadito agent sends it); ``wait=N`` long-polls (Garrison extension).  Jobs are stored locally."""

from __future__ import annotations

import logging
from typing import Any

from garrison.agent import ENGINE_NAME
from garrison.agent.context import Agent
from garrison.agent.errors import ServerError
from garrison.agent.jobstore import Job, JobStore
from garrison.agent.transport import Transport

log = logging.getLogger("garrison.agent.getjobs")


def fetch(agent: Agent, transport: Transport, wait: int = 0) -> list[Any]:
    agent_id = transport.identity.agent_id
    params: list[tuple[str, str | int]] = [
        ("agent_id", agent_id),
        ("antivirus", ENGINE_NAME),
        ("agent_id", agent_id),
    ]
    if wait:
        params.append(("wait", wait))
    answer = transport.get("jobs", params, timeout=wait + 30 if wait else None)
    jobs = answer.get("jobs") if isinstance(answer, dict) else None
    if not isinstance(jobs, list):
        raise ServerError(f"Getjobs: the server's answer has no jobs array: {str(answer)[:200]}")
    return jobs


def run(agent: Agent, wait: int = 0, transport: Transport | None = None) -> list[Job]:
    own = transport is None
    client = transport or agent.transport(timeout=wait + 30 if wait else None)
    try:
        raw = fetch(agent, client, wait)
    finally:
        if own:
            client.close()
    added = JobStore(agent.state).add(raw)
    for job in added:
        log.info("job %d (%s, priority %d) stored", job.id, job.type, job.priority)
    return added
