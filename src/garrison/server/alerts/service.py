"""Alerts (threats found by a station), de-duplicated by the Armadito checksum."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from garrison.server.alerts.models import Alert, AlertComment
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.errors import ConflictError, InvalidInputError, NotFoundError
from garrison.server.jobs import service as jobs
from garrison.server.stations.models import Station
from garrison.server.store.base import column_length, utcnow
from garrison.server.store.upsert import insert_ignore_many
from garrison.server.users import service as users

# The longest value of each text an agent reports, from the columns that hold it.
THREAT_NAME_LENGTH = column_length(Alert.threat_name)
ACTION_LENGTH = column_length(Alert.action)
MODULE_NAME_LENGTH = column_length(Alert.module_name)
COMMENT_LENGTH = 10_000  # characters of one comment
FILEPATH_LENGTH = 4096  # a Text column: the longest path of the systems agents run on
SHA256_RE = re.compile(r"^[0-9A-Fa-f]{64}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class AlertReport:
    threat_name: str
    filepath: str
    action: str = ""
    module_name: str = ""
    detection_time: dt.datetime | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str | None:
        """The detected file's SHA-256, when the agent's info carries a well-formed one."""
        value = self.info.get("sha256")
        return value if isinstance(value, str) and SHA256_RE.match(value) else None

    @property
    def event_uuid(self) -> str | None:
        """The id the agent gave its threat_detected event (for a sample upload), when the
        info carries a well-formed uuid."""
        value = self.info.get("event_uuid")
        return value.lower() if isinstance(value, str) and UUID_RE.match(value) else None


def checksum(
    threat_name: str, filepath: str, detection_time: dt.datetime, agent_id: int, antivirus: str
) -> str:
    """The reference plugin's de-duplication key, with the time in UTC."""
    stamp = detection_time.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    text = f"{threat_name};{filepath};{stamp};{agent_id};{antivirus};"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IngestResult:
    stored: int
    duplicates: int
    new: list[tuple[AlertReport, dt.datetime]] = field(default_factory=list)


def ingest(
    session: Session,
    station_id: int,
    antivirus: str,
    reports: Sequence[AlertReport],
    job_id: int | None = None,
) -> IngestResult:
    if job_id is not None:
        jobs.target_for_station(session, station_id, job_id)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for report in reports:
        detected = report.detection_time or now
        rows.append(
            {
                "station_id": station_id,
                "job_id": job_id,
                "threat_name": report.threat_name[:255],
                "filepath": report.filepath,
                "action": report.action[:64],
                "module_name": report.module_name[:64],
                "antivirus": antivirus[:64],
                "detection_time": detected,
                "received_at": now,
                "checksum": checksum(
                    report.threat_name, report.filepath, detected, station_id, antivirus
                ),
                "info": report.info,
            }
        )
    # De-duplicated in one statement for the report (see insert_ignore_many): a repeat of a
    # stored alert, or of an earlier one in the report, is not inserted and not returned.
    table = Alert.__table__
    stored = set(insert_ignore_many(session, table, rows, table.c.checksum))  # type: ignore[arg-type]
    new: list[tuple[AlertReport, dt.datetime]] = []
    for report, row in zip(reports, rows, strict=True):
        # The first of several equal alerts in one report is the one stored.
        if row["checksum"] in stored:
            stored.discard(row["checksum"])
            new.append((report, row["detection_time"]))
    if reports:
        # A repeated alert is not stored twice, but the station's last-alert time moves.
        session.execute(
            update(Station)
            .where(Station.id == station_id)
            .values(last_alert_at=now)
            .execution_options(synchronize_session=False)
        )
    return IngestResult(stored=len(new), duplicates=len(reports) - len(new), new=new)


def search(
    session: Session,
    *,
    station_id: int | None = None,
    threat: str | None = None,
    acknowledged: bool | None = None,
    since: dt.datetime | None = None,
    job_id: int | None = None,
    assigned_to: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Alert], int]:
    """Alerts newest first; ``assigned_to=""`` means the unassigned ones."""
    query = select(Alert)
    if assigned_to is not None:
        query = query.where(
            Alert.assigned_to == assigned_to if assigned_to else Alert.assigned_to.is_(None)
        )
    if station_id is not None:
        query = query.where(Alert.station_id == station_id)
    if threat:
        query = query.where(Alert.threat_name.icontains(threat, autoescape=True))
    if acknowledged is not None:
        query = query.where(
            Alert.acknowledged_at.is_not(None) if acknowledged else Alert.acknowledged_at.is_(None)
        )
    if since is not None:
        query = query.where(Alert.detection_time >= since)
    if job_id is not None:
        query = query.where(Alert.job_id == job_id)
    total = session.scalar(query.with_only_columns(func.count(Alert.id)))
    rows = session.scalars(query.order_by(Alert.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)


def _alerts(session: Session, alert_ids: Sequence[int]) -> list[Alert]:
    rows = list(
        session.scalars(select(Alert).where(Alert.id.in_(list(alert_ids))).order_by(Alert.id))
    )
    missing = sorted(set(alert_ids) - {a.id for a in rows})
    if missing:
        raise NotFoundError(f"no alert {', '.join(map(str, missing))}", field="alert_ids")
    return rows


def get(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFoundError(f"no alert {alert_id}")
    return alert


def acknowledge(session: Session, actor: Actor, alert_ids: Sequence[int]) -> list[Alert]:
    rows = _alerts(session, alert_ids)
    fresh = [a for a in rows if a.acknowledged_at is None]
    if not fresh:
        raise ConflictError("already acknowledged")
    now = utcnow()
    for alert in fresh:
        alert.acknowledged_at = now
        alert.acknowledged_by = actor.username
    audit.record(session, actor, "alert.acknowledge", ",".join(str(a.id) for a in fresh))
    return rows


def assign(
    session: Session, actor: Actor, alert_ids: Sequence[int], assignee: str | None
) -> list[Alert]:
    """Assign the alerts to an existing user, or unassign them (``None``); an alert already
    so is left as it is.  Refused when it changes none of them."""
    if assignee is not None:
        try:
            users.get_user(session, assignee)
        except NotFoundError:
            raise InvalidInputError(f"no user {assignee!r}", field="assignee") from None
    rows = _alerts(session, alert_ids)
    changed = [a for a in rows if a.assigned_to != assignee]
    if not changed:
        raise ConflictError(f"already assigned to {assignee}" if assignee else "already unassigned")
    now = utcnow()
    for alert in changed:
        alert.assigned_to = assignee
        alert.assigned_at = now if assignee else None
    audit.record(
        session,
        actor,
        "alert.assign",
        ",".join(str(a.id) for a in changed),
        assignee=assignee,
    )
    return rows


def comment(session: Session, actor: Actor, alert_id: int, body: str) -> AlertComment:
    text = body.strip()
    if not text:
        raise InvalidInputError("body must not be empty", field="body")
    if len(text) > COMMENT_LENGTH:
        raise InvalidInputError(f"body must be at most {COMMENT_LENGTH} characters", field="body")
    get(session, alert_id)
    note = AlertComment(alert_id=alert_id, author=actor.username, body=text, created_at=utcnow())
    session.add(note)
    session.flush()
    audit.record(session, actor, "alert.comment", str(alert_id), comment_id=note.id)
    return note


def comments(session: Session, alert_id: int) -> list[AlertComment]:
    """An alert's comments, oldest first."""
    get(session, alert_id)
    return list(
        session.scalars(
            select(AlertComment).where(AlertComment.alert_id == alert_id).order_by(AlertComment.id)
        )
    )


def per_day(session: Session, since: dt.datetime, limit: int = 100_000) -> dict[str, int]:
    """Alerts detected since ``since`` (at most ``limit``), by UTC day (``YYYY-MM-DD``):
    the console's chart.  Counted here, not in SQL: the two backends name days apart."""
    counts: dict[str, int] = {}
    for when in session.scalars(
        select(Alert.detection_time).where(Alert.detection_time >= since).limit(limit)
    ):
        day = when.astimezone(dt.UTC).strftime("%Y-%m-%d")
        counts[day] = counts.get(day, 0) + 1
    return counts


def top_threats(session: Session, since: dt.datetime, limit: int) -> list[tuple[str, int]]:
    """The threats seen most often since ``since``, with their counts."""
    count = func.count(Alert.id)
    rows = session.execute(
        select(Alert.threat_name, count)
        .where(Alert.detection_time >= since)
        .group_by(Alert.threat_name)
        .order_by(count.desc(), Alert.threat_name)
        .limit(limit)
    )
    return [(str(name), int(n)) for name, n in rows]
