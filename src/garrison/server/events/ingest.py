"""Events sent by stations: parse, check against the catalogue, store in one batch.

Two shapes are accepted per event:
- Garrison's ``{"id": "...", "type": "process_started", "time": ..., "data": {...}}``;
- LimaCharlie's ``{"routing": {"event_type", "event_id" | "this", "event_time", ...},
  "event": {...}}``, where the event may also be wrapped in its type name
  (``{"STARTING_UP": {"ts": ...}}``), as in the sensor seed's samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.orm import Session

from garrison.common.catalogue import (
    CATALOGUE,
    MAX_EVENT_BYTES,
    EventInvalidError,
    parse_timestamp,
    validate,
)
from garrison.server.errors import MalformedRequestError
from garrison.server.events.service import NewEvent, append
from garrison.server.jobs import service as jobs
from garrison.server.stations.models import Station
from garrison.server.stations.transitions import shut_down
from garrison.server.store.base import utcnow

MAX_EVENTS = 10_000
MAX_UID = 48


@dataclass(frozen=True)
class ItemResult:
    index: int
    status: str  # stored | duplicate | refused
    seq: int | None = None
    error: str | None = None
    type: str | None = None  # of a stored or duplicate event


# The agent's own lifecycle: the last of these it sends says whether it is running.
LIFECYCLE = ("STARTING_UP", "SHUTTING_DOWN")


def says_shutting_down(results: Sequence[ItemResult]) -> bool:
    """The batch's last new lifecycle event is SHUTTING_DOWN: a spooled one from an earlier
    run followed by STARTING_UP is not; a retried (duplicate) one was acted on already."""
    lifecycle = [r.type for r in results if r.status == "stored" and r.type in LIFECYCLE]
    return bool(lifecycle) and lifecycle[-1] == "SHUTTING_DOWN"


def _unwrap_limacharlie(item: dict[str, Any]) -> tuple[str, str | None, Any, Any]:
    routing = item["routing"]
    if not isinstance(routing, dict):
        raise EventInvalidError("routing", "must be a JSON object")
    event_type = routing.get("event_type")
    uid = routing.get("event_id") or routing.get("this")
    data = item.get("event")
    if (
        isinstance(data, dict)
        and isinstance(event_type, str)
        and isinstance(data.get(event_type), dict)
    ):
        inner = data[event_type]
        data = {**{k: v for k, v in data.items() if k != event_type}, **inner}
    if (
        isinstance(data, dict)
        and routing.get("investigation_id")
        and "INVESTIGATION_ID" not in data
    ):
        data = {**data, "INVESTIGATION_ID": routing["investigation_id"]}
    return str(event_type or ""), uid, routing.get("event_time"), data


def parse_item(item: Any, station: Station, address: str) -> NewEvent:
    if not isinstance(item, dict):
        raise EventInvalidError("", "each event must be a JSON object")
    if len(orjson.dumps(item)) > MAX_EVENT_BYTES:
        raise EventInvalidError("", f"event is larger than {MAX_EVENT_BYTES} bytes")
    event_type: Any
    if "routing" in item:
        event_type, uid, when, data = _unwrap_limacharlie(item)
    else:
        event_type, uid = item.get("type"), item.get("id")
        when, data = item.get("time"), item.get("data", {})
    if not isinstance(event_type, str) or not event_type:
        raise EventInvalidError("type", "is required")
    declared = CATALOGUE.get(event_type)
    if declared is None:
        raise EventInvalidError("type", f"unknown event type {event_type!r}")
    if declared.origin == "server":
        raise EventInvalidError("type", f"{event_type} is produced by the server only")
    if uid is not None and (not isinstance(uid, str) or not 1 <= len(uid) <= MAX_UID):
        raise EventInvalidError("id", f"must be a string of 1 to {MAX_UID} characters")
    if uid is not None and "\x00" in uid:
        # It is stored in a text column, which cannot hold NUL on PostgreSQL.
        raise EventInvalidError("id", "must not contain NUL characters")
    if not isinstance(data, dict):
        raise EventInvalidError("data", "must be a JSON object")
    data = dict(data)
    notification = data.get("NOTIFICATION")
    if (
        isinstance(notification, dict)
        and notification.get("INVESTIGATION_ID")
        and declared.field("INVESTIGATION_ID")
        and "INVESTIGATION_ID" not in data
    ):
        data["INVESTIGATION_ID"] = notification["INVESTIGATION_ID"]
    # The station is who its credential says: an agent cannot speak for another.
    for name, value in (
        ("id", station.id),
        ("address", address),
        ("station", station.hostname or station.uuid),
    ):
        declared_field = declared.field(name)
        if declared_field is not None and (name != "id" or declared_field.type == "integer"):
            data[name] = value
    if event_type == "device_blocked":  # the seed's receive time and name are the server's
        received = utcnow().timestamp()
        data.update(blockrcvtime=received, recv_time=received, name=data.get("station"))
    clean = validate(declared, data)
    time = parse_timestamp(when, "time") if when not in (None, "") else None
    # Event ids are a station's own: another station cannot shadow them.
    scoped = f"s{station.id}:{uid}" if uid is not None else None
    return NewEvent(event_type, clean, station.id, "station", scoped, time)


def _acknowledge_jobs(
    session: Session,
    station: Station,
    valid: Sequence[tuple[int, NewEvent]],
    positions: Sequence[int | None],
) -> None:
    """A Garrison agent's CLOUD_NOTIFICATION says it stored the job ``JOB_ID``: the job moves
    ``sent`` -> ``downloaded`` in this same transaction.  Only a newly stored notification
    counts (a re-sent one is a duplicate here), and only a ``sent`` target moves, so the
    move happens exactly once on any number of nodes."""
    job_ids = [
        event.data["JOB_ID"]
        for (_, event), seq in zip(valid, positions, strict=True)
        if seq and event.type == "CLOUD_NOTIFICATION" and isinstance(event.data.get("JOB_ID"), int)
    ]
    if job_ids:
        jobs.acknowledge(session, station.id, job_ids)


def ingest(session: Session, station: Station, address: str, items: list[Any]) -> list[ItemResult]:
    if len(items) > MAX_EVENTS:
        raise MalformedRequestError(f"at most {MAX_EVENTS} events per request")
    results: list[ItemResult | None] = []
    valid: list[tuple[int, NewEvent]] = []
    for index, item in enumerate(items):
        try:
            valid.append((index, parse_item(item, station, address)))
            results.append(None)
        except EventInvalidError as exc:
            results.append(ItemResult(index, "refused", error=str(exc)))
    positions = append(session, [event for _, event in valid])
    for (index, event), seq in zip(valid, positions, strict=True):
        results[index] = ItemResult(index, "stored" if seq else "duplicate", seq, type=event.type)
    _acknowledge_jobs(session, station, valid, positions)
    done = [r for r in results if r is not None]
    if says_shutting_down(done):
        shut_down(session, station)
    return done
