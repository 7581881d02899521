"""Jobs: created by administrators for stations or a group, fetched and reported by agents."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from garrison.common.vocabulary import AgentKind, JobPriority, JobStatus, JobType
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.content import service as content
from garrison.server.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    UnknownJobError,
)
from garrison.server.jobs import params as response_params
from garrison.server.jobs import upgrade as upgrade_params
from garrison.server.jobs.models import Job, JobTarget
from garrison.server.stations import service as stations
from garrison.server.stations.models import Station
from garrison.server.store.base import utcnow

# Sets of the values: ``"x" in JobType`` raises TypeError on Python 3.11.
_JOB_TYPES = frozenset(JobType)
_PRIORITIES = frozenset(JobPriority)
_STATUSES = frozenset(JobStatus)
MAX_TARGETS = 100_000
_PARAM_LIMIT = 4096


def _check_params(session: Session, job_type: str, params: dict[str, Any]) -> dict[str, Any]:
    for key, value in params.items():
        if isinstance(value, str) and len(value) > _PARAM_LIMIT:
            raise InvalidInputError(f"params.{key} is too long", field=f"params.{key}")
    if job_type in response_params.RESPONSE_TYPES:

        def approved(name: str, sha256: str) -> None:
            content.require_approved_script(session, name, sha256)

        return response_params.check(job_type, params, approved)
    if job_type == JobType.UPGRADE_AGENT:
        return upgrade_params.check(session, params)
    if job_type != "Scan":
        return dict(params)
    path = params.get("path")
    if not isinstance(path, str) or not path.strip():
        raise InvalidInputError(
            "a Scan job needs params.path, the path to scan", field="params.path"
        )
    options = params.get("options", "")
    if not isinstance(options, str):
        raise InvalidInputError("params.options must be a string", field="params.options")
    name = params.get("name", "on-demand")
    if not isinstance(name, str) or not name:
        raise InvalidInputError("params.name must be a non-empty string", field="params.name")
    scanconfig_id = params.get("scanconfig_id", 1)
    if isinstance(scanconfig_id, bool) or not isinstance(scanconfig_id, int):
        raise InvalidInputError(
            "params.scanconfig_id must be an integer", field="params.scanconfig_id"
        )
    clean: dict[str, Any] = {
        "path": path,
        "options": options,
        "name": name,
        "scanconfig_id": scanconfig_id,
    }
    investigation = params.get("investigation_id")
    if investigation is not None:
        if not isinstance(investigation, str) or not 1 <= len(investigation) <= 128:
            raise InvalidInputError(
                "params.investigation_id must be a string of 1-128 characters",
                field="params.investigation_id",
            )
        clean["investigation_id"] = investigation
    return clean


def create(
    session: Session,
    actor: Actor,
    job_type: str,
    priority: int,
    params: dict[str, Any],
    station_ids: Sequence[int] = (),
    group: str | None = None,
) -> tuple[Job, list[int]]:
    if job_type not in _JOB_TYPES:
        raise InvalidInputError(
            f"unknown job type {job_type!r}; known: {', '.join(JobType)}", field="type"
        )
    if priority not in _PRIORITIES:
        raise InvalidInputError("priority must be 0 (low) to 3 (urgent)", field="priority")
    clean = _check_params(session, job_type, params)
    targets = set(station_ids)
    group_id: int | None = None
    if group is not None:
        group_row = stations.group_by_name(session, group)
        group_id = group_row.id
        targets |= set(stations.group_station_ids(session, group_row.id))
    if not targets:
        raise InvalidInputError(
            "the job has no target: give station_ids or a group with stations",
            field="station_ids",
        )
    if len(targets) > MAX_TARGETS:
        raise InvalidInputError(f"at most {MAX_TARGETS} stations per job", field="station_ids")
    kinds: dict[int, str] = {
        sid: kind
        for sid, kind in session.execute(
            select(Station.id, Station.agent_kind).where(Station.id.in_(targets))
        )
    }
    missing = sorted(targets - kinds.keys())
    if missing:
        raise NotFoundError(f"no station {', '.join(map(str, missing[:20]))}", field="station_ids")
    unable = sorted(s for s, kind in kinds.items() if job_type not in AgentKind(kind).job_types)
    if unable:
        raise InvalidInputError(
            f"station {', '.join(map(str, unable[:20]))} cannot run {job_type} jobs "
            "(Armadito agents run Scan jobs only; live response needs a Garrison agent)",
            field="type",
        )
    job = Job(
        type=job_type, priority=priority, params=clean, created_by=actor.username, group_id=group_id
    )
    session.add(job)
    session.flush()
    ordered = sorted(targets)
    session.execute(
        JobTarget.__table__.insert(),  # type: ignore[attr-defined]
        [
            {
                "job_id": job.id,
                "station_id": sid,
                "priority": priority,
                "status": JobStatus.QUEUED,
                "updated_at": utcnow(),
            }
            for sid in ordered
        ],
    )
    audit.record(
        session,
        actor,
        "job.create",
        str(job.id),
        type=job_type,
        priority=priority,
        stations=len(ordered),
        group=group,
    )
    return job, ordered


@dataclass(frozen=True)
class QueuedJob:
    """A job handed to an agent; ``agentapi.render`` writes it in the agent's wire format."""

    id: int
    type: str
    priority: int
    params: dict[str, Any]


def fetch_for_agent(
    session: Session, station_id: int, limit: int, garrison_agent: bool = False
) -> list[QueuedJob]:
    """Getjobs: at most ``limit`` queued jobs, highest priority first, oldest first.  They
    become ``downloaded`` for an Armadito agent, ``sent`` for a Garrison agent (whose
    CLOUD_NOTIFICATION then says it stored them: :func:`acknowledge`).  An expired job (a
    hunt's) is never handed out."""
    now = utcnow()
    rows = session.execute(
        select(Job.id, Job.type, Job.priority, Job.params)
        .join(JobTarget, JobTarget.job_id == Job.id)
        .where(
            JobTarget.station_id == station_id,
            JobTarget.status == "queued",
            (Job.expires_at.is_(None)) | (Job.expires_at > now),
        )
        .order_by(JobTarget.priority.desc(), JobTarget.job_id)
        .limit(limit)
    ).all()
    if not rows:
        return []
    values: dict[str, Any] = {"status": JobStatus.SENT, "updated_at": now}
    if not garrison_agent:
        values = {"status": JobStatus.DOWNLOADED, "downloaded_at": now, "updated_at": now}
    session.execute(
        update(JobTarget)
        .where(
            JobTarget.station_id == station_id,
            JobTarget.job_id.in_([r.id for r in rows]),
            JobTarget.status == "queued",
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return [QueuedJob(r.id, r.type, r.priority, r.params) for r in rows]


def acknowledge(session: Session, station_id: int, job_ids: Sequence[int]) -> list[int]:
    """The agent's CLOUD_NOTIFICATIONs for these jobs arrived: ``sent`` -> ``downloaded``.
    Only a ``sent`` target moves, so a replayed notification (or one from another node's
    copy of the batch) changes nothing: the move happens once."""
    if not job_ids:
        return []
    now = utcnow()
    moved = session.execute(
        update(JobTarget)
        .where(
            JobTarget.station_id == station_id,
            JobTarget.job_id.in_(sorted(set(job_ids))),
            JobTarget.status == JobStatus.SENT,
        )
        .values(status=JobStatus.DOWNLOADED, downloaded_at=now, updated_at=now)
        .returning(JobTarget.job_id)
        .execution_options(synchronize_session=False)
    )
    return sorted(moved.scalars())


def has_queued(session: Session, station_id: int) -> bool:
    return (
        session.scalar(
            select(JobTarget.job_id)
            .where(JobTarget.station_id == station_id, JobTarget.status == "queued")
            .limit(1)
        )
        is not None
    )


def target_for_station(session: Session, station_id: int, job_id: int) -> JobTarget:
    """The station's part of a job; a job that exists but is someone else's is refused."""
    target = session.get(JobTarget, (job_id, station_id))
    if target is not None:
        return target
    if session.get(Job, job_id) is None:
        raise UnknownJobError(f"no job {job_id}", field="job_id")
    raise ForbiddenError(f"job {job_id} is not assigned to this agent", field="job_id")


def _epoch(value: int | None) -> dt.datetime | None:
    if value is None or value <= 0:
        return None
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidInputError("time is out of range", field="start_time") from None


@dataclass(frozen=True)
class JobResult:
    job_id: int
    code: int
    message: str
    start_time: int | None
    end_time: int | None
    # A Garrison agent's structured result (RESPONSE-WIRE.md); None when it sent none.
    result: dict[str, Any] | None = None


# Job types that end with a file the agent must have uploaded before it reports success.
_FILE_TYPES = frozenset({JobType.GET_FILE})


def _settled(
    job: Job, result: JobResult, uploaded: Callable[[str], bool]
) -> tuple[str, dict[str, Any] | None, str | None]:
    """(status, result to store, a message replacing the agent's): nothing partial, nor a
    file that never arrived, is shown as complete."""
    stored = result.result
    if result.code != 0:
        if stored is not None:
            stored = {**stored, "partial": True}
        return JobStatus.FAILED, stored, None
    if stored is None:
        return JobStatus.SUCCESSFUL, None, None
    if stored.get("partial") is True:
        return JobStatus.FAILED, stored, "the agent reported a partial result with code 0"
    if job.type in _FILE_TYPES or (
        job.type == JobType.HUNT and job.params.get("question", {}).get("type") == "CollectFile"
    ):
        digest = stored.get("sha256")
        if not isinstance(digest, str) or not uploaded(digest.lower()):
            return (
                JobStatus.FAILED,
                {**stored, "partial": True},
                f"the agent reported file {digest} but never uploaded it for this job",
            )
    return JobStatus.SUCCESSFUL, stored, None


def report(
    session: Session,
    station_id: int,
    result: JobResult,
    uploaded: Callable[[str], bool] = lambda sha256: False,
) -> JobTarget:
    """Runjobs.  ``uploaded(sha256)``: whether this station uploaded that file for this job
    (a GetFile's success needs it)."""
    target = target_for_station(session, station_id, result.job_id)
    if target.status == JobStatus.CANCELLED:
        raise ConflictError(f"job {result.job_id} was cancelled", field="job_id")
    status, stored, override = _settled(get(session, result.job_id), result, uploaded)
    target.status = status
    target.result = stored
    target.code = result.code
    target.message = (override or result.message)[:65536]
    target.start_time = _epoch(result.start_time)
    target.end_time = _epoch(result.end_time)
    target.updated_at = utcnow()
    return target


def cancel(
    session: Session, actor: Actor, job_id: int, station_ids: Sequence[int] | None = None
) -> int:
    job = session.get(Job, job_id)
    if job is None:
        raise UnknownJobError(f"no job {job_id}")
    query = (
        update(JobTarget)
        .where(JobTarget.job_id == job_id, JobTarget.status == JobStatus.QUEUED)
        .values(status=JobStatus.CANCELLED, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if station_ids:
        query = query.where(JobTarget.station_id.in_(list(station_ids)))
    count = int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]
    if count == 0:
        raise ConflictError(
            f"job {job_id} has no queued station left to cancel (only queued jobs can be cancelled)"
        )
    audit.record(session, actor, "job.cancel", str(job_id), stations=count)
    return count


def status_counts(session: Session, job_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {jid: {} for jid in job_ids}
    if not job_ids:
        return counts
    for jid, status, n in session.execute(
        select(JobTarget.job_id, JobTarget.status, func.count())
        .where(JobTarget.job_id.in_(list(job_ids)))
        .group_by(JobTarget.job_id, JobTarget.status)
    ):
        counts[jid][status] = int(n)
    return counts


def search(
    session: Session,
    *,
    station_id: int | None = None,
    status: str | None = None,
    job_type: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Job], int]:
    query = select(Job)
    if status is not None and status not in _STATUSES:
        raise InvalidInputError(f"status must be one of {', '.join(JobStatus)}", field="status")
    if station_id is not None or status is not None:
        sub = select(JobTarget.job_id)
        if station_id is not None:
            sub = sub.where(JobTarget.station_id == station_id)
        if status is not None:
            sub = sub.where(JobTarget.status == status)
        query = query.where(Job.id.in_(sub))
    if job_type:
        query = query.where(Job.type == job_type)
    total = session.scalar(query.with_only_columns(func.count(Job.id)))
    jobs = session.scalars(query.order_by(Job.id.desc()).limit(limit).offset(offset))
    return list(jobs), int(total or 0)


def get(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise UnknownJobError(f"no job {job_id}")
    return job


def targets(session: Session, job_id: int, limit: int | None = None) -> list[JobTarget]:
    if limit == 0:
        return []
    query = select(JobTarget).where(JobTarget.job_id == job_id).order_by(JobTarget.station_id)
    return list(session.scalars(query.limit(limit)))


@dataclass(frozen=True)
class JobView:
    """A job with what its row does not hold: its per-status counts and its targets (the
    first ``target_limit`` of them, in station order, when a limit is given)."""

    job: Job
    status_counts: dict[str, int]
    targets: list[JobTarget]


def views(session: Session, rows: Sequence[Job], target_limit: int | None = None) -> list[JobView]:
    counts = status_counts(session, [j.id for j in rows])
    return [JobView(j, counts[j.id], targets(session, j.id, target_limit)) for j in rows]


_NETWORK = (JobType.ISOLATE_NETWORK, JobType.REJOIN_NETWORK)


def isolated_count(session: Session) -> int:
    """Stations whose last successful network job isolated them (not rejoined since)."""
    done = (
        select(
            JobTarget.station_id,
            Job.type,
            func.row_number()
            .over(
                partition_by=JobTarget.station_id,
                order_by=(JobTarget.updated_at.desc(), JobTarget.job_id.desc()),
            )
            .label("n"),
        )
        .join(Job, Job.id == JobTarget.job_id)
        .where(Job.type.in_(_NETWORK), JobTarget.status == JobStatus.SUCCESSFUL)
        .subquery()
    )
    latest = (
        select(func.count())
        .select_from(done)
        .where(done.c.n == 1, done.c.type == JobType.ISOLATE_NETWORK)
    )
    return int(session.scalar(latest) or 0)


def network_state(session: Session, station_id: int) -> tuple[bool, int | None, dt.datetime | None]:
    """The station's last successful network job: (isolated, its job id, when it ended)."""
    row = session.execute(
        select(Job.type, JobTarget.job_id, JobTarget.updated_at)
        .join(Job, Job.id == JobTarget.job_id)
        .where(
            JobTarget.station_id == station_id,
            Job.type.in_(_NETWORK),
            JobTarget.status == JobStatus.SUCCESSFUL,
        )
        .order_by(JobTarget.updated_at.desc(), JobTarget.job_id.desc())
        .limit(1)
    ).first()
    if row is None:
        return False, None, None
    return row.type == JobType.ISOLATE_NETWORK, row.job_id, row.updated_at
