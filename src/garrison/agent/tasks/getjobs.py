"""Getjobs: ``GET /api/jobs?agent_id=N&antivirus=…&agent_id=N`` (the id really twice, as the
Armadito agent sends it); ``wait=N`` long-polls (Garrison extension).  Jobs are stored locally.

A Garrison server's answer also says which signed content the station should run
(``content``: serial and manifest hash); the check-in hands it on (``content/sync.py``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from garrison.agent import ENGINE_NAME
from garrison.agent.content.wire import Announcement, parse_announcement
from garrison.agent.context import Agent
from garrison.agent.errors import ServerError
from garrison.agent.jobstore import Job, JobStore
from garrison.agent.transport import Transport

log = logging.getLogger("garrison.agent.getjobs")


@dataclass(frozen=True)
class CheckIn:
    jobs: list[Job]  # the new ones, stored
    content: Announcement | None  # None: the server announces no signed content


def fetch_answer(agent: Agent, transport: Transport, wait: int = 0) -> dict[str, Any]:
    agent_id = transport.identity.agent_id
    params: list[tuple[str, str | int]] = [
        ("agent_id", agent_id),
        ("antivirus", ENGINE_NAME),
        ("agent_id", agent_id),
    ]
    if wait:
        params.append(("wait", wait))
    answer = transport.get("jobs", params, timeout=wait + 30 if wait else None)
    if not isinstance(answer, dict) or not isinstance(answer.get("jobs"), list):
        raise ServerError(f"Getjobs: the server's answer has no jobs array: {str(answer)[:200]}")
    return answer


def fetch(agent: Agent, transport: Transport, wait: int = 0) -> list[Any]:
    jobs: list[Any] = fetch_answer(agent, transport, wait)["jobs"]
    return jobs


def check_in(agent: Agent, wait: int = 0, transport: Transport | None = None) -> CheckIn:
    own = transport is None
    client = transport or agent.transport(timeout=wait + 30 if wait else None)
    try:
        answer = fetch_answer(agent, client, wait)
    finally:
        if own:
            client.close()
    added = JobStore(agent.state).add(answer["jobs"])
    for job in added:
        log.info("job %d (%s, priority %d) stored", job.id, job.type, job.priority)
    return CheckIn(added, parse_announcement(answer.get("content")))


def run(agent: Agent, wait: int = 0, transport: Transport | None = None) -> list[Job]:
    return check_in(agent, wait, transport).jobs
