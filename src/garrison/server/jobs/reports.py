"""The agent's job reports: Getjobs (fetch what is queued) and Runjobs (a job's result)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from garrison.common.vocabulary import AgentKind, JobType
from garrison.server.errors import ForbiddenError, InvalidInputError, UnknownStationError
from garrison.server.events import emitters
from garrison.server.files import service as files
from garrison.server.hunts import service as hunt_service
from garrison.server.hunts.watch import HuntWatch
from garrison.server.jobs import service as jobs
from garrison.server.jobs.service import JobResult, QueuedJob
from garrison.server.jobs.waiters import JobWaiters
from garrison.server.options import service as options
from garrison.server.stations.credentials import (
    AgentCredential,
    Caller,
    allowed,
    reporting_station,
)
from garrison.server.stations.models import Station
from garrison.server.store.engine import Database


@dataclass(frozen=True)
class JobsFetched:
    station_id: int
    jobs: list[QueuedJob]


def fetch(
    db: Database,
    waiters: JobWaiters,
    credential: AgentCredential,
    agent_id: int,
    hunt_watch: HuntWatch | None = None,
) -> JobsFetched:
    """Getjobs: the station's queued jobs, highest priority first, now ``downloaded``
    (``sent`` for a Garrison agent, until its CLOUD_NOTIFICATION).

    ``agent_id`` is 0 when the agent gave none.  A station this node knows has nothing
    queued is answered without a read (see JobWaiters); most others from a read-only
    transaction; only a station with jobs takes a write transaction.  While hunts are
    active, a station not checked yet first gets those it matches (``HuntWatch``).
    """
    if credential.station_id is not None:
        if agent_id not in (0, credential.station_id):
            raise ForbiddenError("this agent_id belongs to another agent", field="agent_id")
        station_id = credential.station_id
    else:
        if agent_id <= 0:
            raise InvalidInputError("agent_id is required", field="agent_id")
        with db.reading() as session:
            station = session.get(Station, agent_id)
            if station is None:
                raise UnknownStationError(
                    f"unknown agent {agent_id}; enroll first", field="agent_id"
                )
            allowed(station)
        station_id = agent_id
    if hunt_watch is not None and hunt_watch.needs_check(station_id):
        generation, active = hunt_watch.snapshot()
        queued: list[int] = []
        if active:
            # Most check-ins find nothing new: a read answers them, a write only queues.
            with db.reading() as session:
                due = hunt_service.missing(session, station_id, active)
            if due:
                with db.transaction() as session:
                    queued = hunt_service.materialise(session, station_id, due)
        if queued:
            waiters.mark_queued([station_id])
        hunt_watch.checked(station_id, generation)
    if not waiters.may_have_jobs(station_id):
        return JobsFetched(station_id, [])
    version = waiters.version(station_id)
    with db.reading() as session:
        if not jobs.has_queued(session, station_id):
            waiters.nothing_queued(station_id, version)
            return JobsFetched(station_id, [])
    with db.transaction() as session:
        limit = options.get(session, "getjobs_limit")
        station = session.get(Station, station_id)
        garrison = station is not None and station.agent_kind == AgentKind.GARRISON
        fetched = jobs.fetch_for_agent(session, station_id, limit, garrison_agent=garrison)
        if any(_collects(q) for q in fetched):
            cap = files.cap_for(session, station_id).bytes
            fetched = [_with_cap(q, cap) if _collects(q) else q for q in fetched]
        return JobsFetched(station_id, fetched)


def _collects(queued: QueuedJob) -> bool:
    if queued.type == JobType.GET_FILE:
        return True
    question = queued.params.get("question")
    return (
        queued.type == JobType.HUNT
        and isinstance(question, dict)
        and question.get("type") == "CollectFile"
    )


def _with_cap(queued: QueuedJob, cap: int) -> QueuedJob:
    """The station's file cap now (RESPONSE-WIRE.md ``max_bytes``): the size limit or what
    its quota leaves, whichever is less."""
    params = dict(queued.params)
    if queued.type == JobType.GET_FILE:
        params["max_bytes"] = cap
    else:
        params["question"] = {**params["question"], "max_bytes": cap}
    return replace(queued, params=params)


@dataclass(frozen=True)
class JobReported:
    station_id: int
    job_id: int
    status: str


def report(db: Database, caller: Caller, result: JobResult) -> JobReported:
    """Runjobs: record a job's result and emit ``task_executed`` (and ``datetime_error``
    when the agent's clock is off)."""
    with db.transaction() as session:
        station = reporting_station(session, caller)
        if station.agent_kind != AgentKind.GARRISON and result.result is not None:
            result = replace(result, result=None)  # structured results are Garrison's

        def uploaded(sha256: str) -> bool:
            return files.uploaded_for_job(session, station.id, result.job_id, sha256)

        target = jobs.report(session, station.id, result, uploaded)
        job = jobs.get(session, target.job_id)
        emitters.task_executed(
            session,
            station,
            job.id,
            job.type,
            target.status == "successful",
            target.message or "",
            target.end_time,
        )
        if target.end_time is not None:
            # The agent reports the end time right after the job ends: its clock is visible.
            emitters.datetime_error(
                session,
                station,
                target.end_time,
                options.get(session, "datetime_valid_delta_seconds"),
            )
        return JobReported(station.id, target.job_id, target.status)
