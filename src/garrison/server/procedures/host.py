"""What a procedure may read and do: the ``garrison`` table it sees in Lua, server side.

A procedure runs in a worker process with no database (:mod:`.worker`), and no transaction
is open while it runs:

- **reads** (``station``, ``groups``, ``group_stations``, ``recent_alerts``, ``jobs``,
  ``scans``, ``state``, ``config``, ``recent_events``; ``allow_station`` reads whether the
  station is denied) come back to the server as host calls, each answered here in a short
  read transaction of its own, bounded in rows and time (:class:`HostReads`);
- **writes** (``create_job``, ``allow_station``, ``raise_alert``, ``audit``, ``log``, and the
  live-response ``isolate``, ``kill_process``, ``get_file``, ``start_hunt``: ``response``) are
  collected while it runs and applied after it, in order, in one short transaction
  (:func:`apply`), inside a savepoint: a run that fails, or a write that fails, leaves
  nothing behind.  The writes are the administrators' use cases, joined to that
  transaction: a job a procedure creates is the admin API's job creation, down to the
  after-commit wake-up of the station's long-poll.  Since they happen after the run,
  ``create_job`` returns ``true`` (the job's id is logged once it exists) and reads during
  the run do not see the run's own writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from garrison.common.catalogue import format_timestamp
from garrison.common.vocabulary import Role
from garrison.server.alerts import service as alerts
from garrison.server.alerts.models import Alert
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.configs import service as configs
from garrison.server.errors import InvalidInputError, NotFoundError
from garrison.server.events.models import Event
from garrison.server.jobs import actions as jobs
from garrison.server.jobs.models import Job, JobTarget
from garrison.server.procedures import response
from garrison.server.procedures.models import DEFAULT_SET
from garrison.server.procedures.sandbox import cap_args
from garrison.server.procedures.workers import Action
from garrison.server.scans.models import Scan
from garrison.server.states.models import StationState
from garrison.server.stations import actions as stations
from garrison.server.stations.models import Group, Station, station_groups
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database
from garrison.server.store.unit import Joined

log = structlog.get_logger("garrison.procedures")


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise InvalidInputError(f"{what} must be an integer")
    if abs(value) >= 1 << 63:
        raise InvalidInputError(f"{what} is out of range")
    return int(value)


def _arg(args: Sequence[Any], index: int, default: Any = None) -> Any:
    return args[index] if len(args) > index else default


# Every read answers at most this many rows, and PostgreSQL stops any read statement
# after READ_SECONDS (SQLite reads are local and bounded by their rows; the run's own
# deadline still bounds the whole run, reads included).
MAX_ROWS = 100
READ_SECONDS = 1.0
EVENT_DAYS = 30  # recent_events looks this far back at most


def _limit(value: Any, default: int = 10) -> int:
    return max(1, min(_int(default if value is None else value, "limit"), MAX_ROWS))


class HostReads:
    """Answers a running procedure's reads ("Database: available"), each in its own read
    transaction: what an operator reads through the admin API about stations, groups,
    alerts, jobs, scans, state, effective configuration and events, bounded in rows
    (:data:`MAX_ROWS`) and time (:data:`READ_SECONDS`).  Nothing here writes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __call__(self, fn: str, args: list[Any]) -> Any:
        if fn == "station":
            return self.station(_arg(args, 0))
        if fn == "recent_alerts":
            return self.recent_alerts(_arg(args, 0), _arg(args, 1, 10))
        if fn == "groups":
            return self.groups(_arg(args, 0))
        if fn == "group_stations":
            return self.group_stations(_arg(args, 0), _arg(args, 1, 10))
        if fn == "jobs":
            return self.jobs(_arg(args, 0), _arg(args, 1, 10))
        if fn == "scans":
            return self.scans(_arg(args, 0), _arg(args, 1, 10))
        if fn == "state":
            return self.state(_arg(args, 0))
        if fn == "config":
            return self.config(_arg(args, 0), _arg(args, 1, "avconfig"))
        if fn == "recent_events":
            return self.recent_events(_arg(args, 0), _arg(args, 1, 10), _arg(args, 2))
        if fn == "allow_station":
            return self.denied(_arg(args, 0))
        raise InvalidInputError(f"no host function {fn!r}")

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with self.db.reading() as session:
            if self.db.backend == "postgresql":
                ms = int(READ_SECONDS * 1000)
                session.execute(text(f"SET LOCAL statement_timeout = {ms}"))
            yield session

    def station(self, station_id: Any) -> dict[str, Any] | None:
        sid = _int(station_id, "station id")
        with self._reading() as session:
            st = session.get(Station, sid)
            if st is None:
                return None
            found = {
                "id": st.id,
                "uuid": st.uuid,
                "hostname": st.hostname,
                "address": st.address,
                "mac": st.mac,
                "os": st.os_name,
                "platform": st.os_platform,
                "antivirus": st.antivirus_name,
                "antivirus_version": st.antivirus_version,
                "agent_version": st.agent_version,
                "agent_kind": st.agent_kind,
                "enrolled_at": format_timestamp(st.enrolled_at),
                "last_seen": format_timestamp(st.last_seen),
                "connected": st.connected,
                "denied": st.denied_at is not None,
                "latitude": st.latitude,
                "longitude": st.longitude,
                "groups": [g.name for g in st.groups],
            }
        return dict(cap_args(found))

    def recent_alerts(self, station_id: Any, limit: Any = 10) -> list[dict[str, Any]]:
        count = _limit(limit)
        sid = _int(station_id, "station id")
        with self._reading() as session:
            rows = session.scalars(
                select(Alert).where(Alert.station_id == sid).order_by(Alert.id.desc()).limit(count)
            )
            found = [
                {
                    "id": a.id,
                    "threat": a.threat_name,
                    "path": a.filepath,
                    "action": a.action,
                    "detection_time": format_timestamp(a.detection_time),
                    "acknowledged": a.acknowledged_at is not None,
                }
                for a in rows
            ]
        return list(cap_args(found))

    def groups(self, station_id: Any) -> list[str]:
        sid = _int(station_id, "station id")
        with self._reading() as session:
            st = session.get(Station, sid)
            return list(cap_args([g.name for g in st.groups][:MAX_ROWS])) if st else []

    def group_stations(self, name: Any, limit: Any = 10) -> list[int] | None:
        """The ids of a group's stations (lowest first), or nil for no such group."""
        if not isinstance(name, str):
            raise InvalidInputError("group name must be a string")
        count = _limit(limit)
        with self._reading() as session:
            group = session.scalar(select(Group).where(Group.name == name[:128]))
            if group is None:
                return None
            return list(
                session.scalars(
                    select(station_groups.c.station_id)
                    .where(station_groups.c.group_id == group.id)
                    .order_by(station_groups.c.station_id)
                    .limit(count)
                )
            )

    def jobs(self, station_id: Any, limit: Any = 10) -> list[dict[str, Any]]:
        """The station's newest jobs, with its own status in each."""
        count = _limit(limit)
        sid = _int(station_id, "station id")
        with self._reading() as session:
            rows = session.execute(
                select(Job, JobTarget)
                .join(JobTarget, JobTarget.job_id == Job.id)
                .where(JobTarget.station_id == sid)
                .order_by(Job.id.desc())
                .limit(count)
            )
            found = [
                {
                    "id": job.id,
                    "type": job.type,
                    "priority": target.priority,
                    "status": target.status,
                    "created_at": format_timestamp(job.created_at),
                    "created_by": job.created_by,
                    "code": target.code,
                    "message": target.message,
                    "end_time": format_timestamp(target.end_time) if target.end_time else None,
                }
                for job, target in rows
            ]
        return list(cap_args(found))

    def scans(self, station_id: Any, limit: Any = 10) -> list[dict[str, Any]]:
        count = _limit(limit)
        sid = _int(station_id, "station id")
        with self._reading() as session:
            rows = session.scalars(
                select(Scan).where(Scan.station_id == sid).order_by(Scan.id.desc()).limit(count)
            )
            found = [
                {
                    "id": scan.id,
                    "job_id": scan.job_id,
                    "progress": scan.progress,
                    "scanned": scan.scanned_count,
                    "malware": scan.malware_count,
                    "suspicious": scan.suspicious_count,
                    "duration_seconds": scan.duration_seconds,
                    "started_at": format_timestamp(scan.started_at),
                    "completed_at": (
                        format_timestamp(scan.completed_at) if scan.completed_at else None
                    ),
                }
                for scan in rows
            ]
        return list(cap_args(found))

    def state(self, station_id: Any) -> dict[str, Any] | None:
        """The station's last State report (nil: none yet)."""
        sid = _int(station_id, "station id")
        with self._reading() as session:
            found = session.get(StationState, sid)
            if found is None:
                return None
            answer = {
                "global_status": found.global_status,
                "global_update_time": (
                    format_timestamp(found.global_update_time) if found.global_update_time else None
                ),
                "modules": found.modules[:MAX_ROWS],
                "avdetails": found.avdetails[:MAX_ROWS],
                "updated_at": format_timestamp(found.updated_at),
            }
        return dict(cap_args(answer))

    def config(self, station_id: Any, kind: Any = "avconfig") -> dict[str, str] | None:
        """The station's effective configuration of ``kind`` (avconfig or scheduler), as
        attr = value; nil when it has not reported one."""
        sid = _int(station_id, "station id")
        if not isinstance(kind, str):
            raise InvalidInputError("config kind must be a string")
        with self._reading() as session:
            try:
                pairs = configs.effective(session, sid, kind)
            except NotFoundError:
                return None
        return dict(cap_args(dict(list(pairs.items())[: MAX_ROWS * 5])))

    def recent_events(
        self, station_id: Any, limit: Any = 10, event_type: Any = None
    ) -> list[dict[str, Any]]:
        """The station's newest events (of one type, if given) received in the last
        :data:`EVENT_DAYS` days, newest (last received) first."""
        count = _limit(limit)
        sid = _int(station_id, "station id")
        if event_type is not None and not isinstance(event_type, str):
            raise InvalidInputError("event type must be a string")
        since = utcnow() - dt.timedelta(days=EVENT_DAYS)
        query = select(Event).where(Event.station_id == sid, Event.received_at >= since)
        if event_type is not None:
            query = query.where(Event.type == event_type[:64])
        with self._reading() as session:
            rows = session.scalars(query.order_by(Event.seq.desc()).limit(count))
            found = [
                {
                    "seq": e.seq,
                    "type": e.type,
                    "time": format_timestamp(e.time),
                    "severity": e.severity,
                    "data": e.data,
                }
                for e in rows
            ]
        return list(cap_args(found))

    def denied(self, station_id: Any) -> bool:
        """``allow_station``'s answer: whether the station is denied now (the allow itself
        is applied after the run)."""
        sid = _int(station_id, "station id")
        with self.db.reading() as session:
            st = session.get(Station, sid)
            return st is not None and st.denied_at is not None


def apply(
    session: Session,
    procedure: str,
    event_seq: int | None,
    actions: Sequence[Action],
    set_name: str = DEFAULT_SET,
) -> list[str]:
    """Apply what a run asked for, in order, in ``session``; returns what it did, as log
    lines.  Raises the first error (the caller's savepoint undoes the rest).  The actor is
    ``procedure:<event>`` for the default set's procedure, ``procedure:<set>/<event>`` for
    another set's."""
    who = procedure if set_name == DEFAULT_SET else f"{set_name}/{procedure}"
    actor = Actor(username=f"procedure:{who}"[:64], role=Role.OPERATOR)
    done: list[str] = []
    for action in actions:
        args = action.args
        if action.fn == "create_job":
            station_id, job_type = _int(_arg(args, 0), "station id"), _arg(args, 1)
            if not isinstance(job_type, str):
                raise InvalidInputError("job type must be a string")
            params = _arg(args, 2)
            view = jobs.create_job(
                Joined(session),
                actor,
                job_type,
                _int(_arg(args, 3, 1), "priority"),
                params if isinstance(params, dict) else {},
                station_ids=[station_id],
                target_limit=0,
            )
            done.append(f"created {job_type} job {view.job.id} for station {station_id}")
        elif action.fn in response.ACTIONS:
            done.append(response.apply(session, actor, action.fn, list(args), event_seq))
        elif action.fn == "allow_station":
            station_id = _int(_arg(args, 0), "station id")
            was_denied = stations.allow_station(Joined(session), actor, station_id)
            done.append(
                f"allowed station {station_id}" + ("" if was_denied else " (was not denied)")
            )
        elif action.fn == "raise_alert":
            alerts.ingest(
                session,
                _int(_arg(args, 0), "station id"),
                "garrison",
                [
                    alerts.AlertReport(
                        threat_name=str(_arg(args, 1, ""))[:255],
                        filepath=str(_arg(args, 2, ""))[:4096],
                        action=str(_arg(args, 3, "procedure"))[:64],
                        module_name=procedure[:64],
                    )
                ],
            )
        elif action.fn == "audit":
            audit.record(
                session,
                actor,
                f"procedure.{str(_arg(args, 0, ''))[:40]}",
                str(_arg(args, 1, ""))[:255],
                detail=str(_arg(args, 2, ""))[:1000],
                event_seq=event_seq,
            )
        else:
            raise InvalidInputError(f"no host action {action.fn!r}")
    for line in done:
        log.info("procedure log", procedure=procedure, event_seq=event_seq, message=line)
    return done
