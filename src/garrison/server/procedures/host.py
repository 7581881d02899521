"""What a procedure may read and do: the ``garrison`` table it sees in Lua.

Everything runs in the procedure's own transaction (a savepoint), so a procedure that fails
half-way leaves nothing behind.  Its actions are the administrators' use cases, joined to
that transaction: a job it creates is the admin API's job creation, down to the after-commit
wake-up of the station's long-poll.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.common.catalogue import format_timestamp
from garrison.common.vocabulary import Role
from garrison.server.alerts import service as alerts
from garrison.server.alerts.models import Alert
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.errors import InvalidInputError
from garrison.server.jobs import actions as jobs
from garrison.server.stations import actions as stations
from garrison.server.stations.models import Station
from garrison.server.store.unit import Joined

log = structlog.get_logger("garrison.procedures")
MAX_LOGS = 100


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise InvalidInputError(f"{what} must be an integer")
    return int(value)


class ProcedureHost:
    def __init__(self, session: Session, procedure: str, event_seq: int | None) -> None:
        self.session = session
        self.procedure = procedure
        self.event_seq = event_seq
        self.actor = Actor(username=f"procedure:{procedure}", role=Role.OPERATOR)
        self.logs: list[str] = []

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "station": self.station,
            "recent_alerts": self.recent_alerts,
            "groups": self.groups,
            "create_job": self.create_job,
            "allow_station": self.allow_station,
            "raise_alert": self.raise_alert,
            "audit": self.audit,
            "log": self.log,
        }

    def station(self, station_id: Any) -> dict[str, Any] | None:
        st = self.session.get(Station, _int(station_id, "station id"))
        if st is None:
            return None
        return {
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
            "groups": [g.name for g in st.groups],
        }

    def recent_alerts(self, station_id: Any, limit: Any = 10) -> list[dict[str, Any]]:
        count = max(1, min(_int(limit, "limit"), 100))
        rows = self.session.scalars(
            select(Alert)
            .where(Alert.station_id == _int(station_id, "station id"))
            .order_by(Alert.id.desc())
            .limit(count)
        )
        return [
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

    def groups(self, station_id: Any) -> list[str]:
        st = self.session.get(Station, _int(station_id, "station id"))
        return [g.name for g in st.groups] if st else []

    def create_job(
        self, station_id: Any, job_type: Any, params: Any = None, priority: Any = 1
    ) -> int:
        if not isinstance(job_type, str):
            raise InvalidInputError("job type must be a string")
        view = jobs.create_job(
            Joined(self.session),
            self.actor,
            job_type,
            _int(priority, "priority"),
            params if isinstance(params, dict) else {},
            station_ids=[_int(station_id, "station id")],
            target_limit=0,
        )
        self.log(f"created {job_type} job {view.job.id} for station {station_id}")
        return view.job.id

    def allow_station(self, station_id: Any) -> bool:
        """Lift a denial by the authorization procedure (the admin API's allow, audited as
        this procedure); whether the station was denied.  Lua: garrison.allow_station(id)."""
        was_denied = stations.allow_station(
            Joined(self.session), self.actor, _int(station_id, "station id")
        )
        self.log(f"allowed station {station_id}" + ("" if was_denied else " (was not denied)"))
        return was_denied

    def raise_alert(
        self, station_id: Any, threat: Any, path: Any = "", action: Any = "procedure"
    ) -> bool:
        result = alerts.ingest(
            self.session,
            _int(station_id, "station id"),
            "garrison",
            [
                alerts.AlertReport(
                    threat_name=str(threat)[:255],
                    filepath=str(path),
                    action=str(action)[:64],
                    module_name=self.procedure[:64],
                )
            ],
        )
        return result.stored == 1

    def audit(self, action: Any, target: Any = "", detail: Any = "") -> None:
        audit.record(
            self.session,
            self.actor,
            f"procedure.{str(action)[:40]}",
            str(target)[:255],
            detail=str(detail)[:1000],
            event_seq=self.event_seq,
        )

    def log(self, message: Any) -> None:
        text = str(message)[:2000]
        if len(self.logs) < MAX_LOGS:
            self.logs.append(text)
        log.info("procedure log", procedure=self.procedure, event_seq=self.event_seq, message=text)
