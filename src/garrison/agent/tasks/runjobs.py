"""Runjobs: run stored jobs, highest priority first, and report each with ``POST /api/jobs``
(``job_id``, ``code``, ``message`` — MIME base64 on failure, as the Armadito agent —,
``start_time``, ``end_time``) and a ``RECEIPT`` event echoing the job's investigation id.

A job that fails, whose type is unknown, or that the server sent corrupt, is reported failed;
nothing a job does can stop the others or crash the agent."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

from garrison.agent.context import Agent, mime_base64
from garrison.agent.errors import AgentError, JobError
from garrison.agent.jobs import HANDLERS
from garrison.agent.jobs import uninstall as uninstall_job
from garrison.agent.jobstore import Job, JobStore

log = logging.getLogger("garrison.agent.runjobs")

CODE_UNKNOWN_TYPE = 2
CODE_BAD_JOB = 3
CODE_INTERNAL = 99


@dataclass
class Outcome:
    job: Job
    code: int
    message: str


@dataclass
class RunSummary:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o.code != 0)


def execute(agent: Agent, job: Job) -> tuple[int, str]:
    if job.problem:
        return CODE_BAD_JOB, f"corrupt job from the server: {job.problem}"
    handler = HANDLERS.get(job.type)
    if handler is None:
        return (
            CODE_UNKNOWN_TYPE,
            f"unknown job type {job.type!r}; this agent runs {', '.join(HANDLERS)}",
        )
    try:
        return 0, handler(agent, job)
    except JobError as exc:
        return exc.code, exc.message
    except AgentError as exc:
        return 1, exc.message
    except Exception as exc:  # a bug in a job must not take the agent down
        log.exception("job %d (%s) crashed", job.id, job.type)
        return CODE_INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


def report(agent: Agent, job: Job, code: int, message: str, start: int, end: int) -> None:
    agent.send(
        "jobs",
        "Runjobs",
        {
            "job_id": job.id,
            "code": code,
            "message": message if code == 0 else mime_base64(message),
            "start_time": start,
            "end_time": end,
        },
    )
    agent.event(
        "RECEIPT",
        {
            "INVESTIGATION_ID": job.investigation_id,
            "ERROR": code,
            "ERROR_MESSAGE": message[:4000],
            "JOB_ID": job.id,
        },
    )


def run(agent: Agent, wait: float = 0, wait_random: float = 0) -> RunSummary:
    delay = wait + (random.uniform(0, wait_random) if wait_random else 0)  # noqa: S311
    if delay > 0:
        agent.stop_requested.wait(delay)
    store = JobStore(agent.state)
    summary = RunSummary()
    with agent.state.lock("runjobs"):
        for job in store.ordered():
            if agent.stop_requested.is_set():
                break
            start = int(time.time())
            code, message = execute(agent, job)
            end = int(time.time())
            log.info("job %d (%s) code %d: %s", job.id, job.type, code, message)
            report(agent, job, code, message, start, end)
            # Reported (durably queued) before it leaves the store: a crash in between runs
            # the job again rather than losing its result.
            store.remove(job.id)
            summary.outcomes.append(Outcome(job, code, message))
            if agent.uninstall_requested:
                break
    return summary


def finish_uninstall(agent: Agent) -> None:
    if agent.uninstall_requested:
        try:
            agent.flush()
        except AgentError as exc:
            log.warning("uninstall: could not report before removal: %s", exc.message)
        uninstall_job.finish(agent)
