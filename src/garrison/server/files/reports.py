"""A Garrison agent's file upload (``PUT /api/files/<sha256>``, RESPONSE-WIRE.md).

Two steps around the bytes: :func:`plan` checks who uploads what for which job or alert, and
the cap that applies, before a byte is read; the edge reads and hashes the body within that
cap; :func:`finish` stores it in one transaction (the quota checked again there, since
another upload of the same station may have landed meanwhile).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from garrison.common.vocabulary import AgentKind, JobStatus, JobType
from garrison.server.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from garrison.server.events.models import Event
from garrison.server.files import service as files
from garrison.server.files.service import Cap
from garrison.server.jobs import service as jobs
from garrison.server.options import service as options
from garrison.server.stations.credentials import AgentCredential, named_station
from garrison.server.store.engine import Database

UUID_RE = re.compile(r"^[0-9a-fA-F-]{8,64}$")
_OPEN = frozenset({JobStatus.SENT, JobStatus.DOWNLOADED})


@dataclass(frozen=True)
class UploadPlan:
    station_id: int
    job_id: int | None
    alert_uid: str | None
    path: str
    cap: Cap
    held: bool  # the station uploaded these bytes before: only the size limit applies

    @property
    def limit(self) -> int:
        return self.cap.max_bytes if self.held else self.cap.bytes

    def refuse(self, size: int) -> None:
        """413, saying which limit, for a body of ``size`` bytes that cannot fit."""
        if self.held:
            Cap(self.cap.max_bytes, self.cap.max_bytes).refuse(size)
        else:
            self.cap.refuse(size)


def _job_path(job_type: str, params: dict[str, object], job_id: int) -> str:
    if job_type == JobType.GET_FILE:
        return str(params.get("path", ""))
    question = params.get("question")
    if (
        job_type == JobType.HUNT
        and isinstance(question, dict)
        and question.get("type") == "CollectFile"
    ):
        return str(question.get("path", ""))
    raise ForbiddenError(f"job {job_id} is a {job_type} job: it collects no file", field="job_id")


def plan(
    db: Database,
    credential: AgentCredential,
    sha256: str,
    job_id: int | None,
    alert: str | None,
) -> UploadPlan:
    if credential.station_id is None:
        raise ForbiddenError("uploading files needs a station's own credential (its token)")
    if (job_id is None) == (alert is None):
        raise InvalidInputError("give exactly one of job_id or alert", field="job_id")
    with db.reading() as session:
        station = named_station(session, credential.station_id)
        if station.agent_kind != AgentKind.GARRISON:
            raise ForbiddenError("only Garrison agents upload files")
        alert_uid: str | None = None
        if job_id is not None:
            target = jobs.target_for_station(session, station.id, job_id)
            job = jobs.get(session, job_id)
            path = _job_path(job.type, job.params, job_id)
            if target.status not in _OPEN:
                raise ConflictError(
                    f"job {job_id} is {target.status} for this station: it takes no upload",
                    field="job_id",
                )
        else:
            if alert is None or not UUID_RE.match(alert):
                raise InvalidInputError("alert must be the uuid of an event", field="alert")
            if options.get(session, "upload_samples") != 1:
                raise ForbiddenError(
                    "sample uploads are off on this server (setting upload_samples)",
                    field="alert",
                )
            event = session.scalar(
                select(Event.uid).where(
                    Event.uid.in_([f"s{station.id}:{alert}", alert]),
                    Event.station_id == station.id,
                    Event.type == "threat_detected",
                )
            )
            if event is None:
                raise NotFoundError(
                    f"no threat_detected event {alert} from this station", field="alert"
                )
            alert_uid, path = alert, ""
        return UploadPlan(
            station.id,
            job_id,
            alert_uid,
            path,
            files.cap_for(session, station.id),
            files.holds(session, station.id, sha256),
        )


@dataclass(frozen=True)
class Uploaded:
    station_id: int
    sha256: str
    size: int
    created: bool  # False: the same bytes were stored already


def finish(
    db: Database, plan: UploadPlan, sha256: str, size: int, chunks: Iterable[bytes]
) -> Uploaded:
    with db.transaction() as session:
        if not files.holds(session, plan.station_id, sha256):
            files.cap_for(session, plan.station_id).refuse(size)
        created = files.store(session, sha256, size, chunks)
        files.record_upload(
            session, sha256, size, plan.station_id, plan.job_id, plan.alert_uid, plan.path
        )
    return Uploaded(plan.station_id, sha256, size, created)
