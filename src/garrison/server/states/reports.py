"""The agent's State report: the antivirus state of a station, and its event."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from garrison.server.events import emitters
from garrison.server.states import service as states
from garrison.server.stations import service as stations
from garrison.server.stations.credentials import Caller, reporting_station
from garrison.server.store.engine import Database


@dataclass(frozen=True)
class StateReport:
    global_status: str
    global_update_time: dt.datetime | None
    modules: list[dict[str, Any]]
    avdetails: list[Any]
    antivirus_name: str = ""
    antivirus_version: str = ""
    content_serial: int | None = None  # a Garrison agent's installed content serial
    # A Garrison agent's configured location (None: it reports none; the stored one stays).
    location: tuple[float, float] | None = None
    # The envelope's agent_version: a self-update changes it (issue 21).
    agent_version: str = ""


def record(db: Database, caller: Caller, report: StateReport) -> int:
    """Store the state, emit ``state_reported``, note the antivirus; returns the station id."""
    with db.transaction() as session:
        station = reporting_station(session, caller)
        states.record(
            session,
            station.id,
            report.global_status,
            report.global_update_time,
            report.modules,
            report.avdetails,
            report.content_serial,
        )
        emitters.state_reported(session, station, report.modules, report.avdetails)
        if report.antivirus_name:
            station.antivirus_name = report.antivirus_name
        if report.antivirus_version:
            station.antivirus_version = report.antivirus_version
        if report.agent_version:
            station.agent_version = report.agent_version
        if report.location is not None:
            stations.set_location(session, station, report.location, "agent")
        return station.id
