"""Getjobs: ``GET /api/jobs?agent_id=N&antivirus=…&agent_id=N`` (the id really twice, as the
Armadito agent sends it); ``wait=N`` long-polls (Garrison extension).  Jobs are stored locally.

A Garrison server's answer also says which signed content the station should run
(``content``: serial and manifest hash); the check-in hands it on (``content/sync.py``).

Each job stored is acknowledged with a ``CLOUD_NOTIFICATION`` event (the receipt of a task,
LimaCharlie's name), spooled like every event: the server moves the job ``sent`` ->
``downloaded`` when it arrives."""

from __future__ import annotations

import logging
import uuid
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


def notify_received(agent: Agent, job: Job) -> None:
    """The receipt of a downloaded job (queued before the job can run, so it reaches the
    server before the job's result)."""
    agent.event(
        "CLOUD_NOTIFICATION",
        {
            "NOTIFICATION_ID": str(uuid.uuid4()),
            "INVESTIGATION_ID": job.investigation_id,
            "NOTIFICATION": {"INVESTIGATION_ID": job.investigation_id},
            "JOB_ID": job.id,
        },
    )


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
        notify_received(agent, job)
    return CheckIn(added, parse_announcement(answer.get("content")))


def run(agent: Agent, wait: int = 0, transport: Transport | None = None) -> list[Job]:
    return check_in(agent, wait, transport).jobs
