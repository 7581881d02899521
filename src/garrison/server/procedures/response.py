"""Live-response actions of procedures (``garrison.isolate``, ``kill_process``, ``get_file``,
``start_hunt``): the administrators' job and hunt creation, with a rate limit, so that a
``threat_detected`` procedure can isolate, kill and collect, while a procedure looping over
every event cannot flood a station with jobs or the fleet with hunts.

The limits are counted in the database (the jobs and hunts made by procedures in the last
window), so they hold across nodes.  A limited action is skipped, audited
(``procedure.rate_limited``) and logged; the run's other writes still happen.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from garrison.common.vocabulary import JobPriority, JobType
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.errors import InvalidInputError
from garrison.server.hunts import actions as hunts
from garrison.server.hunts.models import Hunt
from garrison.server.jobs import actions as jobs
from garrison.server.jobs.models import Job, JobTarget
from garrison.server.store.base import utcnow
from garrison.server.store.unit import Joined

WINDOW = dt.timedelta(minutes=1)
STATION_ACTIONS_PER_WINDOW = 10  # response jobs procedures may make for one station
HUNT_WINDOW = dt.timedelta(hours=1)
HUNTS_PER_WINDOW = 5  # hunts procedures may start, fleet-wide
ACTIONS = ("isolate", "kill_process", "get_file", "start_hunt")
_TYPES = (JobType.ISOLATE_NETWORK, JobType.KILL_PROCESS, JobType.GET_FILE)


def _kill_params(what: Any) -> dict[str, Any]:
    if isinstance(what, int) and not isinstance(what, bool):
        return {"pid": what}
    if isinstance(what, dict):
        return dict(what)
    raise InvalidInputError("kill_process(station, pid | {pid=…, tree=…}) wants a pid or a table")


def _job_for(fn: str, args: list[Any]) -> tuple[str, dict[str, Any]]:
    if fn == "isolate":
        return JobType.ISOLATE_NETWORK, {}
    if fn == "kill_process":
        return JobType.KILL_PROCESS, _kill_params(args[1] if len(args) > 1 else None)
    path = args[1] if len(args) > 1 else None
    if not isinstance(path, str):
        raise InvalidInputError("get_file(station, path) wants the path as a string")
    return JobType.GET_FILE, {"path": path}


def _recent_station_jobs(session: Session, station_id: int, since: dt.datetime) -> int:
    count = session.scalar(
        select(func.count())
        .select_from(Job)
        .join(JobTarget, JobTarget.job_id == Job.id)
        .where(
            JobTarget.station_id == station_id,
            Job.created_at >= since,
            Job.created_by.like("procedure:%"),
            Job.type.in_(_TYPES),
        )
    )
    return int(count or 0)


def _recent_hunts(session: Session, since: dt.datetime) -> int:
    count = session.scalar(
        select(func.count(Hunt.id)).where(
            Hunt.created_at >= since, Hunt.created_by.like("procedure:%")
        )
    )
    return int(count or 0)


def _limited(session: Session, actor: Actor, fn: str, what: str, event_seq: int | None) -> str:
    audit.record(
        session, actor, "procedure.rate_limited", what, host_action=fn, event_seq=event_seq
    )
    return f"rate limited: {fn} for {what} skipped"


def apply(session: Session, actor: Actor, fn: str, args: list[Any], event_seq: int | None) -> str:
    """One response action, in ``session``; returns its log line."""
    now = utcnow()
    if fn == "start_hunt":
        if _recent_hunts(session, now - HUNT_WINDOW) >= HUNTS_PER_WINDOW:
            return _limited(session, actor, fn, "the fleet", event_seq)
        question, target, expires_in = args[0], args[1], args[2]
        hunt = hunts.create_hunt(Joined(session), actor, question, target, expires_in)
        return f"started hunt {hunt.id}"
    if not args or isinstance(args[0], bool) or not isinstance(args[0], int):
        raise InvalidInputError(f"{fn} needs a station id")
    station_id = args[0]
    job_type, params = _job_for(fn, args)
    if _recent_station_jobs(session, station_id, now - WINDOW) >= STATION_ACTIONS_PER_WINDOW:
        return _limited(session, actor, fn, f"station {station_id}", event_seq)
    view = jobs.create_job(
        Joined(session),
        actor,
        job_type,
        JobPriority.URGENT,
        params,
        station_ids=[station_id],
        target_limit=0,
    )
    return f"created {job_type} job {view.job.id} for station {station_id}"
