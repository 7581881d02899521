"""The agent's Scan report: progress or results of a scan, and its statistics event."""

from __future__ import annotations

from dataclasses import dataclass

from garrison.server.events import emitters
from garrison.server.scans import service as scans
from garrison.server.scans.service import ScanReport
from garrison.server.stations.credentials import Caller, reporting_station
from garrison.server.store.engine import Database


@dataclass(frozen=True)
class ScanRecorded:
    station_id: int
    scan_id: int


def record(db: Database, caller: Caller, report: ScanReport) -> ScanRecorded:
    """Store the report; the one that completes the scan emits ``station_scan_statistics``."""
    with db.transaction() as session:
        station = reporting_station(session, caller)
        scan, completed = scans.record(session, station.id, report)
        if completed:
            done = scans.file_actions(session, scan, report)
            emitters.scan_statistics(
                session,
                station,
                scan.scanned_count,
                scan.malware_count,
                scan.suspicious_count,
                scan.duration_seconds,
                moved=done.quarantined,
                deleted=done.deleted,
            )
        return ScanRecorded(station.id, scan.id)
