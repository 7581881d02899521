"""Hunts: one question for every station a target matches, until the hunt expires.

A hunt on disk (``FindFile``, ``FindProcess``, ``CollectFile``, ``RunScript``) is carried by
one ``Hunt`` job whose ``expires_at`` is the hunt's: its targets are the stations asked, made
for the stations matching when the hunt is created and, for a station that matches later (it
enrolled, joined the group, came back online), at its next Getjobs
(:func:`materialise`).  Its progress and results are that job's targets.  A hunt is never
"finished": it is ``active`` until it expires or is stopped, since a station may still come.

A hunt over the telemetry already on the server (``SearchEvents``, ``IocSweep``) is answered
at once, when created, from the event log; its answer is kept with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from garrison.common.catalogue import CATALOGUE
from garrison.common.vocabulary import AgentKind, JobPriority, JobStatus, JobType
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.content import formats
from garrison.server.content import service as content
from garrison.server.errors import ConflictError, InvalidInputError, NotFoundError
from garrison.server.events import service as events
from garrison.server.hunts.models import Hunt
from garrison.server.jobs import params as checks
from garrison.server.jobs.models import Job, JobTarget
from garrison.server.stations import service as stations
from garrison.server.stations.models import Group, Station, station_groups
from garrison.server.store.base import utcnow
from garrison.server.store.upsert import insert_ignore_many

AGENT_QUESTIONS = ("FindFile", "FindProcess", "CollectFile", "RunScript")
SERVER_QUESTIONS = ("SearchEvents", "IocSweep")
MAX_EXPIRES_IN = 30 * 86400
DEFAULT_MAX_DEPTH = 32
MAX_YARA = 64 * 1024
MAX_SERVER_EVENTS = 10_000
HuntState = Literal["active", "stopped", "expired"]
EXPIRED = "the hunt expired before this station fetched it"
STOPPED = "the hunt was stopped before this station fetched it"


def _bad(field: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{field} {message}", field=field)


def _pattern(value: Any, field: str, max_len: int = 255) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_len or "\x00" in value:
        raise _bad(field, f"must be a string of 1-{max_len} characters")
    return value


def _find_file(q: dict[str, Any]) -> dict[str, Any]:
    given = [k for k in ("sha256", "glob", "yara") if k in q]
    if len(given) != 1:
        raise _bad("question", "FindFile needs exactly one of sha256, glob or yara")
    clean: dict[str, Any] = {"type": "FindFile"}
    key = given[0]
    if key == "sha256":
        clean["sha256"] = checks.sha256(q["sha256"], "question.sha256")
    elif key == "glob":
        clean["glob"] = _pattern(q["glob"], "question.glob")
    else:
        clean["yara"] = _yara(q["yara"])
    roots = q.get("roots", ["/"])
    if not isinstance(roots, list) or not 1 <= len(roots) <= 32:
        raise _bad("question.roots", "must be a list of 1-32 absolute directories")
    clean["roots"] = [checks.absolute_path(r, f"question.roots[{i}]") for i, r in enumerate(roots)]
    depth = q.get("max_depth", DEFAULT_MAX_DEPTH)
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= 256:
        raise _bad("question.max_depth", "must be an integer from 0 to 256")
    clean["max_depth"] = depth
    return clean


def _yara(source: Any) -> str:
    """The rule must compile here (with the content channel's checks: no includes, within
    the time budgets), so that no agent is sent a broken one."""
    text = _pattern(source, "question.yara", MAX_YARA)
    try:
        formats.check_yara(text)
    except formats.FormatError as exc:
        raise _bad("question.yara", exc.message) from None
    return text


def check_question(session: Session, question: Any) -> dict[str, Any]:
    if not isinstance(question, dict):
        raise _bad("question", "must be a JSON object with a type")
    kind = question.get("type")
    known = (*AGENT_QUESTIONS, *SERVER_QUESTIONS)
    if kind not in known:
        raise _bad("question.type", f"must be one of {', '.join(known)}")
    if kind == "FindFile":
        return _find_file(question)
    if kind == "FindProcess":
        clean: dict[str, Any] = {"type": kind}
        for key in ("name", "cmdline"):
            if key in question:
                clean[key] = _pattern(question[key], f"question.{key}")
        if "sha256" in question:
            clean["sha256"] = checks.sha256(question["sha256"], "question.sha256")
        if len(clean) == 1:
            raise _bad("question", "FindProcess needs name, sha256 or cmdline")
        return clean
    if kind == "CollectFile":
        return {"type": kind, "path": checks.absolute_path(question.get("path"), "question.path")}
    if kind == "RunScript":

        def approved(name: str, sha256: str) -> None:
            content.require_approved_script(session, name, sha256)

        return {"type": kind, **checks.script(question, "question", approved)}
    if kind == "IocSweep":
        hashes = question.get("hashes")
        if not isinstance(hashes, list) or not 1 <= len(hashes) <= 1000:
            raise _bad("question.hashes", "must be a list of 1-1000 MD5, SHA-1 or SHA-256")
        return {"type": kind, "hashes": [_pattern(h, "question.hashes", 64) for h in hashes]}
    # SearchEvents: the filters of GET /admin/v1/events
    clean = {"type": kind}
    for key in ("hash", "process", "path", "user", "host", "ip"):
        if key in question:
            clean[key] = _pattern(question[key], f"question.{key}")
    event_types = question.get("types", [])
    if not isinstance(event_types, list) or not all(isinstance(t, str) for t in event_types):
        raise _bad("question.types", "must be a list of event types")
    clean["types"] = list(event_types)
    if len(clean) == 2 and not clean["types"]:
        raise _bad("question", "SearchEvents needs at least one filter")
    return clean


def check_target(session: Session, target: Any) -> dict[str, Any]:
    """``{"all": true}``, ``{"group": name}``, ``{"label": name}`` (Garrison's labels are its
    groups: a station may be in many) or ``{"os": name}`` (the station's OS name)."""
    if not isinstance(target, dict) or len(target) != 1:
        raise _bad("target", "must be one of {all: true}, {group}, {label} or {os}")
    key, value = next(iter(target.items()))
    if key == "all":
        if value is not True:
            raise _bad("target.all", "must be true")
        return {"all": True}
    if key in ("group", "label"):
        name = _pattern(value, f"target.{key}", 128)
        stations.group_by_name(session, name)
        return {key: name}
    if key == "os":
        return {"os": _pattern(value, "target.os", 64).lower()}
    raise _bad("target", f"has an unknown key {key!r} (all, group, label or os)")


def _matching(target: dict[str, Any], garrison_only: bool = True) -> Any:
    """The stations a target matches, as a query of ids.  A hunt on disk asks Garrison
    agents only (an Armadito agent is never handed a Hunt), not denied; telemetry is on the
    server whatever agent sent it (``garrison_only=False``)."""
    query = select(Station.id)
    if garrison_only:
        query = query.where(Station.agent_kind == AgentKind.GARRISON, Station.denied_at.is_(None))
    name = target.get("group") or target.get("label")
    if name is not None:
        members = (
            select(station_groups.c.station_id)
            .join(Group, Group.id == station_groups.c.group_id)
            .where(Group.name == name)
        )
        query = query.where(Station.id.in_(members))
    elif "os" in target:
        query = query.where(func.lower(Station.os_name) == target["os"])
    return query


def _add_targets(session: Session, job: Job, station_ids: Iterable[int]) -> list[int]:
    now = utcnow()
    rows = [
        {
            "job_id": job.id,
            "station_id": sid,
            "priority": job.priority,
            "status": JobStatus.QUEUED,
            "updated_at": now,
        }
        for sid in station_ids
    ]
    return insert_ignore_many(
        session,
        JobTarget.__table__,  # type: ignore[arg-type]
        rows,
        JobTarget.__table__.c.station_id,
    )


def create(
    session: Session,
    actor: Actor,
    question: Any,
    target: Any,
    expires_in: Any,
    priority: int = JobPriority.MEDIUM,
) -> tuple[Hunt, list[int]]:
    """The hunt and the stations queued for it now (none for a server question)."""
    clean = check_question(session, question)
    aim = check_target(session, target)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise _bad("expires_in", "must be an integer number of seconds")
    if not 60 <= expires_in <= MAX_EXPIRES_IN:
        raise _bad("expires_in", f"must be from 60 to {MAX_EXPIRES_IN} seconds")
    if priority not in frozenset(JobPriority):
        raise _bad("priority", "must be 0 (low) to 3 (urgent)")
    now = utcnow()
    expires_at = (now + dt.timedelta(seconds=expires_in)).replace(microsecond=0)
    hunt = Hunt(
        question=clean,
        target=aim,
        created_at=now,
        created_by=actor.username[:64],
        expires_at=expires_at,
    )
    session.add(hunt)
    session.flush()
    queued: list[int] = []
    if clean["type"] in SERVER_QUESTIONS:
        hunt.server_result = _answer_on_server(session, clean, aim)
    else:
        job = Job(
            type=JobType.HUNT,
            priority=priority,
            params={
                "hunt_id": hunt.id,
                "question": clean,
                "expires_at": int(expires_at.timestamp()),
            },
            created_by=actor.username[:64],
            expires_at=expires_at,
        )
        session.add(job)
        session.flush()
        hunt.job_id = job.id
        queued = sorted(_add_targets(session, job, session.scalars(_matching(aim))))
    audit.record(
        session,
        actor,
        "hunt.create",
        str(hunt.id),
        question=clean["type"],
        aim=aim,
        expires_in=expires_in,
        stations=len(queued),
    )
    return hunt, queued


def _answer_on_server(
    session: Session, question: dict[str, Any], target: dict[str, Any]
) -> dict[str, Any]:
    """A telemetry hunt: the stations (of the target) whose events answer the question."""
    if question["type"] == "IocSweep":
        rows, _ = events.ioc_sweep(session, question["hashes"], MAX_SERVER_EVENTS)
    else:
        query = events.EventQuery(
            types=tuple(question["types"]),
            **{
                k: question[k]
                for k in ("hash", "process", "path", "user", "host", "ip")
                if k in question
            },
        )
        rows, _ = events.search(session, query, MAX_SERVER_EVENTS, 0)
    allowed = set(session.scalars(_matching(target, garrison_only=False)))
    per_station: dict[int, dict[str, Any]] = {}
    for event in rows:
        if event.station_id is None or event.station_id not in allowed:
            continue
        entry = per_station.setdefault(
            event.station_id,
            {"station_id": event.station_id, "found": True, "events": 0, "paths": []},
        )
        entry["events"] += 1
        for path in _event_paths(event.type, event.data):
            if path not in entry["paths"] and len(entry["paths"]) < 100:
                entry["paths"].append(path)
    return {
        "stations": [per_station[sid] for sid in sorted(per_station)],
        "truncated": len(rows) >= MAX_SERVER_EVENTS,
    }


def _event_paths(event_type: str, data: dict[str, Any]) -> list[str]:
    """The values of the event's fields the catalogue marks as paths (``search="path"``)."""
    declared = CATALOGUE.get(event_type)
    if declared is None:
        return []
    found = []
    for key, value in data.items():
        spec = declared.field(key)
        if spec is not None and spec.search == "path" and isinstance(value, str) and value:
            found.append(value)
    return found


@dataclass(frozen=True)
class ActiveHunt:
    hunt_id: int
    job_id: int
    target: dict[str, Any]
    expires_at: dt.datetime


def active(session: Session, now: dt.datetime | None = None) -> list[ActiveHunt]:
    """The hunts on disk that still reach stations (not expired, not stopped)."""
    now = now or utcnow()
    rows = session.execute(
        select(Hunt.id, Hunt.job_id, Hunt.target, Hunt.expires_at).where(
            Hunt.expires_at > now, Hunt.stopped_at.is_(None), Hunt.job_id.is_not(None)
        )
    ).all()
    return [ActiveHunt(r.id, r.job_id, r.target, r.expires_at) for r in rows]


def missing(session: Session, station_id: int, hunts: Sequence[ActiveHunt]) -> list[ActiveHunt]:
    """The active hunts this station matches and has not been given (a read)."""
    if not hunts:
        return []
    had = set(
        session.scalars(
            select(JobTarget.job_id).where(
                JobTarget.station_id == station_id,
                JobTarget.job_id.in_([h.job_id for h in hunts]),
            )
        )
    )
    return [
        hunt
        for hunt in hunts
        if hunt.job_id not in had
        and session.scalar(_matching(hunt.target).where(Station.id == station_id)) is not None
    ]


def materialise(session: Session, station_id: int, hunts: Sequence[ActiveHunt]) -> list[int]:
    """Queue for this station every active hunt it matches and has not had yet; returns the
    hunts' job ids queued now.  Idempotent, on any node: a target is keyed by (job, station)."""
    new: list[int] = []
    for hunt in missing(session, station_id, hunts):
        job = session.get(Job, hunt.job_id)
        if job is not None and _add_targets(session, job, [station_id]):
            new.append(hunt.job_id)
    return new


def get(session: Session, hunt_id: int) -> Hunt:
    hunt = session.get(Hunt, hunt_id)
    if hunt is None:
        raise NotFoundError(f"no hunt {hunt_id}", field="hunt_id")
    return hunt


def state(hunt: Hunt, now: dt.datetime | None = None) -> HuntState:
    """``active``, ``stopped`` or ``expired``: never "finished" while a station may come."""
    if hunt.stopped_at is not None:
        return "stopped"
    if hunt.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def _close_queued(session: Session, job_ids: Sequence[int], message: str) -> int:
    if not job_ids:
        return 0
    result = session.execute(
        update(JobTarget)
        .where(JobTarget.job_id.in_(list(job_ids)), JobTarget.status == JobStatus.QUEUED)
        .values(status=JobStatus.CANCELLED, message=message, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def stop(session: Session, actor: Actor, hunt_id: int) -> Hunt:
    hunt = get(session, hunt_id)
    current = state(hunt)
    if current != "active":
        raise ConflictError(f"hunt {hunt_id} is {current} already")
    now = utcnow()
    hunt.stopped_at = now
    hunt.stopped_by = actor.username[:64]
    if hunt.job_id is not None:
        job = session.get(Job, hunt.job_id)
        if job is not None:
            job.expires_at = now
        _close_queued(session, [hunt.job_id], STOPPED)
    audit.record(session, actor, "hunt.stop", str(hunt_id))
    return hunt


def close_expired(session: Session, now: dt.datetime | None = None) -> int:
    """The stations an expired hunt never reached end ``cancelled`` with the reason (instead
    of waiting ``queued`` for ever); returns how many."""
    now = now or utcnow()
    expired = list(
        session.scalars(
            select(Job.id).where(
                Job.type == JobType.HUNT,
                Job.expires_at <= now,
                Job.id.in_(select(JobTarget.job_id).where(JobTarget.status == JobStatus.QUEUED)),
            )
        )
    )
    return _close_queued(session, expired, EXPIRED)


def search(
    session: Session, *, state_filter: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[Hunt], int]:
    query = select(Hunt)
    now = utcnow()
    if state_filter == "active":
        query = query.where(Hunt.stopped_at.is_(None), Hunt.expires_at > now)
    elif state_filter == "stopped":
        query = query.where(Hunt.stopped_at.is_not(None))
    elif state_filter == "expired":
        query = query.where(Hunt.stopped_at.is_(None), Hunt.expires_at <= now)
    elif state_filter is not None:
        raise _bad("state", "must be active, stopped or expired")
    total = session.scalar(query.with_only_columns(func.count(Hunt.id)))
    rows = session.scalars(query.order_by(Hunt.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)
