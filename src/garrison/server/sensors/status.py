"""A station's sensor status, read from its latest ``sensor_health`` event.

No table of its own: the event log has every report, and ``ix_events_station_type_seq``
makes the latest one of a station a single index probe.  The event's indexed family
(``sensor_0``, ``state_0``, … ``count``) becomes one entry per sensor.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.server.events.models import Event
from garrison.server.stations import service as stations

HEALTH_EVENT = "sensor_health"
COUNTERS = (
    "produced",
    "dropped",
    "dropped_rate_limit",
    "dropped_queue",
    "dropped_spool",
    "overflows",
    "excluded",
    "hash_pending",
)
MAX_SENSORS = 64  # the catalogue's max_items for the family


@dataclass(frozen=True)
class SensorStatus:
    sensor: str
    state: str
    reason: str
    counters: dict[str, int]


@dataclass(frozen=True)
class StationSensors:
    station_id: int
    reported_at: dt.datetime | None  # the event's own time (the agent's clock)
    received_at: dt.datetime | None
    started_at: Any
    policy_version: str
    policy_error: str
    sensors: list[SensorStatus] = field(default_factory=list)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return 0


def parse(data: dict[str, Any]) -> list[SensorStatus]:
    count = _int(data.get("count"))
    out: list[SensorStatus] = []
    for index in range(min(count, MAX_SENSORS)):
        name = data.get(f"sensor_{index}")
        if not isinstance(name, str):
            continue
        counters = {
            key: _int(data[f"{key}_{index}"]) for key in COUNTERS if f"{key}_{index}" in data
        }
        out.append(
            SensorStatus(
                sensor=name,
                state=str(data.get(f"state_{index}", "")),
                reason=str(data.get(f"reason_{index}", "")),
                counters=counters,
            )
        )
    return out


def station_sensors(session: Session, station_id: int) -> StationSensors:
    stations.get(session, station_id)  # NotFoundError for an unknown station
    latest = session.scalar(
        select(Event)
        .where(Event.station_id == station_id, Event.type == HEALTH_EVENT)
        .order_by(Event.seq.desc())
        .limit(1)
    )
    if latest is None:
        return StationSensors(station_id, None, None, None, "", "")
    data = latest.data if isinstance(latest.data, dict) else {}
    return StationSensors(
        station_id=station_id,
        reported_at=latest.time,
        received_at=latest.received_at,
        started_at=data.get("started_at"),
        policy_version=str(data.get("policy_version", "")),
        policy_error=str(data.get("policy_error", "")),
        sensors=parse(data),
    )


def fleet_states(session: Session, since: dt.datetime, limit: int) -> dict[str, int]:
    """How many sensors are in each state, over the stations' latest health reports since
    ``since`` (the newest ``limit`` reports): the console dashboard's sensor health."""
    latest: dict[int, Event] = {}
    for event in session.scalars(
        select(Event)
        .where(Event.type == HEALTH_EVENT, Event.received_at >= since)
        .order_by(Event.seq.desc())
        .limit(limit)
    ):
        if event.station_id is not None:
            latest.setdefault(event.station_id, event)
    states: dict[str, int] = {}
    for event in latest.values():
        for sensor in parse(event.data if isinstance(event.data, dict) else {}):
            states[sensor.state] = states.get(sensor.state, 0) + 1
    return dict(sorted(states.items()))
