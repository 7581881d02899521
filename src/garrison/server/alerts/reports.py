"""The agent's Alerts report: threats found, stored once each, and their events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from garrison.server.alerts import service as alerts
from garrison.server.alerts.service import AlertReport
from garrison.server.events import emitters
from garrison.server.stations.credentials import Caller, reporting_station
from garrison.server.store.engine import Database


@dataclass(frozen=True)
class AlertsReported:
    antivirus_name: str
    job_id: int | None
    alerts: Sequence[AlertReport]


@dataclass(frozen=True)
class AlertsRecorded:
    station_id: int
    stored: int
    duplicates: int


def record(db: Database, caller: Caller, report: AlertsReported) -> AlertsRecorded:
    """Store the alerts not seen before; the new ones emit ``threats_detected``."""
    with db.transaction() as session:
        station = reporting_station(session, caller)
        result = alerts.ingest(
            session, station.id, report.antivirus_name, report.alerts, report.job_id
        )
        if result.new:
            threats = []
            for alert, detected in result.new:
                threats.append(
                    emitters.Threat(
                        alert.threat_name,
                        alert.filepath,
                        alert.action,
                        detected,
                        alert.sha256,
                        alert.event_uuid,
                    )
                )
            emitters.threats_detected(session, station, threats)
        return AlertsRecorded(station.id, result.stored, result.duplicates)
