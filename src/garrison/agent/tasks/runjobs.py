"""Runjobs: run stored jobs, highest priority first, and report each with ``POST /api/jobs``
(``job_id``, ``code``, ``message`` — MIME base64 on failure, as the Armadito agent —,
``start_time``, ``end_time``; for a response job its ``result`` object, held to 1 MiB) and
a ``RECEIPT`` event echoing the job's investigation id.

A job that fails, whose type is unknown, or that the server sent corrupt, is reported failed;
nothing a job does can stop the others or crash the agent."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from garrison.agent.context import Agent, mime_base64
from garrison.agent.errors import AgentError, JobDeferred, JobError
from garrison.agent.jobs import HANDLERS, codes
from garrison.agent.jobs import result as resultmod
from garrison.agent.jobs import uninstall as uninstall_job
from garrison.agent.jobs.params import Reply
from garrison.agent.jobstore import Job, JobStore

log = logging.getLogger("garrison.agent.runjobs")

CODE_UNKNOWN_TYPE = codes.UNKNOWN_TYPE
CODE_BAD_JOB = codes.BAD_JOB
CODE_INTERNAL = codes.INTERNAL


@dataclass
class Outcome:
    job: Job
    code: int
    message: str
    result: dict[str, Any] | None = None


@dataclass
class RunSummary:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o.code != 0)


def execute(agent: Agent, job: Job) -> tuple[int, str, dict[str, Any] | None]:
    """(code, message, result): ``result`` only from a response job; on a failure, what it
    did before failing, marked ``partial``."""
    if job.problem:
        return CODE_BAD_JOB, f"corrupt job from the server: {job.problem}", None
    handler = HANDLERS.get(job.type)
    if handler is None:
        return (
            CODE_UNKNOWN_TYPE,
            f"unknown job type {job.type!r}; this agent runs {', '.join(HANDLERS)}",
            None,
        )
    try:
        answer = handler(agent, job)
    except JobDeferred:
        raise  # answered later: run() keeps the job
    except JobError as exc:
        partial = {**exc.result, "partial": True} if exc.result is not None else None
        return exc.code, exc.message, partial
    except AgentError as exc:
        return 1, exc.message, None
    except Exception as exc:  # a bug in a job must not take the agent down
        log.exception("job %d (%s) crashed", job.id, job.type)
        return CODE_INTERNAL, f"internal error: {type(exc).__name__}: {exc}", None
    if isinstance(answer, Reply):
        return 0, answer.message, answer.result
    return 0, answer, None


def report(
    agent: Agent,
    job: Job,
    code: int,
    message: str,
    start: int,
    end: int,
    result: dict[str, Any] | None = None,
) -> None:
    body: dict[str, Any] = {
        "job_id": job.id,
        "code": code,
        "message": message if code == 0 else mime_base64(message),
        "start_time": start,
        "end_time": end,
    }
    if result is not None:
        body["result"] = resultmod.cap(result)
    agent.send("jobs", "Runjobs", body)
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
            try:
                code, message, result = execute(agent, job)
            except JobDeferred as deferred:
                log.info("job %d (%s) deferred: %s", job.id, job.type, deferred.message)
                if agent.restart_requested:
                    break
                continue
            end = int(time.time())
            log.info("job %d (%s) code %d: %s", job.id, job.type, code, message)
            report(agent, job, code, message, start, end, result)
            # Reported (durably queued) before it leaves the store: a crash in between runs
            # the job again rather than losing its result.
            store.remove(job.id)
            summary.outcomes.append(Outcome(job, code, message, result))
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
