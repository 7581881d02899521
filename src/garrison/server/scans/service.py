"""Scan progress and results reported by agents (Scan task)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from garrison.server.errors import InvalidInputError
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


def record(session: Session, station_id: int, report: ScanReport) -> tuple[Scan, bool]:
    """Store progress or results; the flag says this report completed the scan."""
    if not 0 <= report.progress <= 100:
        raise InvalidInputError("progress must be between 0 and 100", field="progress")
    for name in ("duration_seconds", "scanned_count", "malware_count", "suspicious_count"):
        if getattr(report, name) < 0:
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
