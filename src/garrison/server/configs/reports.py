"""The agent's AVConfig and Scheduler reports, and the configuration pushed back to it."""

from __future__ import annotations

from dataclasses import dataclass

from garrison.server.configs import service as configs
from garrison.server.configs.service import Pairs
from garrison.server.stations.credentials import Caller, reporting_station
from garrison.server.store.engine import Database


@dataclass(frozen=True)
class ConfigRecorded:
    station_id: int
    differences: int


def record(db: Database, caller: Caller, kind: str, pairs: Pairs, name: str = "") -> ConfigRecorded:
    """Store the station's reported configuration of ``kind`` (``avconfig``, ``scheduler``)."""
    with db.transaction() as session:
        station = reporting_station(session, caller)
        count = configs.report(session, station.id, kind, pairs, name=name)
        return ConfigRecorded(station.id, count)


def desired(db: Database, kind: str) -> dict[str, str]:
    """The configuration of ``kind`` the administrators want every agent to run."""
    with db.reading() as session:
        return configs.desired(session, kind)
