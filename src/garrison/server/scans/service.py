"""Scan progress and results reported by agents (Scan task)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from garrison.server.alerts.models import Alert
from garrison.server.errors import InvalidInputError, NotFoundError
from garrison.server.jobs import service as jobs
from garrison.server.scans.models import Scan
from garrison.server.store.base import utcnow


@dataclass(frozen=True)
class ScanReport:
    job_id: int | None
    progress: int
    duration_seconds: int
    scanned_count: int
    malware_count: int
    suspicious_count: int
    # Garrison's agent also says how many files it quarantined and deleted; others do not.
    quarantined_count: int | None = None
    deleted_count: int | None = None


@dataclass(frozen=True)
class FileActions:
    """What a scan did to the files it found (station_scan_statistics' moved, deleted)."""

    quarantined: int = 0
    deleted: int = 0


# The alert actions that mean a file was quarantined or deleted.
QUARANTINED = "quarantined"
DELETED = "deleted"


def file_actions(session: Session, scan: Scan, report: ScanReport) -> FileActions:
    """As the report says, else counted from the alerts the station sent for the scan's job
    (an agent sends a scan's alerts before its final report): files, not detections."""
    if report.quarantined_count is not None or report.deleted_count is not None:
        return FileActions(report.quarantined_count or 0, report.deleted_count or 0)
    if scan.job_id is None:
        return FileActions()
    rows = session.execute(
        select(Alert.action, func.count(func.distinct(Alert.filepath)))
        .where(
            Alert.station_id == scan.station_id,
            Alert.job_id == scan.job_id,
            Alert.action.in_((QUARANTINED, DELETED)),
        )
        .group_by(Alert.action)
    )
    counts: dict[str, int] = {action: count for action, count in rows}
    return FileActions(counts.get(QUARANTINED, 0), counts.get(DELETED, 0))


def record(session: Session, station_id: int, report: ScanReport) -> tuple[Scan, bool]:
    """Store progress or results; the flag says this report completed the scan."""
    if not 0 <= report.progress <= 100:
        raise InvalidInputError("progress must be between 0 and 100", field="progress")
    for name in (
        "duration_seconds",
        "scanned_count",
        "malware_count",
        "suspicious_count",
        "quarantined_count",
        "deleted_count",
    ):
        if (getattr(report, name) or 0) < 0:
            raise InvalidInputError(f"{name} must not be negative", field=name)
    scan: Scan | None = None
    if report.job_id is not None:
        jobs.target_for_station(session, station_id, report.job_id)
        scan = session.scalar(
            select(Scan).where(Scan.station_id == station_id, Scan.job_id == report.job_id)
        )
    now = utcnow()
    if scan is None:
        scan = Scan(station_id=station_id, job_id=report.job_id, started_at=now)
        session.add(scan)
    scan.progress = report.progress
    scan.duration_seconds = report.duration_seconds
    scan.scanned_count = report.scanned_count
    scan.malware_count = report.malware_count
    scan.suspicious_count = report.suspicious_count
    scan.updated_at = now
    completed = report.progress == 100 and scan.completed_at is None
    if completed:
        scan.completed_at = now
    session.flush()
    return scan, completed


def get(session: Session, scan_id: int) -> Scan:
    scan = session.get(Scan, scan_id)
    if scan is None:
        raise NotFoundError(f"no scan {scan_id}", field="scan_id")
    return scan


def search(
    session: Session,
    *,
    station_id: int | None = None,
    job_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Scan], int]:
    query = select(Scan)
    if station_id is not None:
        query = query.where(Scan.station_id == station_id)
    if job_id is not None:
        query = query.where(Scan.job_id == job_id)
    total = session.scalar(query.with_only_columns(func.count(Scan.id)))
    rows = session.scalars(query.order_by(Scan.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)
