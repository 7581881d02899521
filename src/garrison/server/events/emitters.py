"""The events only the server can see, built from the agent API traffic and admin actions.

Each helper writes its event in the caller's transaction, so the event exists exactly when
the change that caused it does.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from garrison.common.catalogue import format_timestamp, is_mac
from garrison.server import logs
from garrison.server.events.service import emit, emit_many
from garrison.server.stations.models import Station
from garrison.server.store.base import utcnow

SERVER_NAME = socket.gethostname()
UPDATE_FAILED_STATUSES = ("critical", "update-failed", "failed", "error")
REBOOT_ATTRS = ("reboot-required", "reboot_required", "rebootrequired")


def station_args(station: Station, address: str | None = None) -> dict[str, Any]:
    return {
        "id": station.id,
        "address": address or station.address,
        "station": station.hostname or station.uuid,
    }


def compmac(station: Station) -> str | None:
    """The station's MAC for an event's ``compmac``: a station stores the MAC its agent sent
    as given, and one in a form that is no MAC address is left out of the event."""
    return station.mac if station.mac and is_mac(station.mac) else None


def station_created(session: Session, station: Station, login: str) -> None:
    emit(
        session,
        "station_created",
        station.id,
        {"login": login, "id": station.id, "name": station.hostname or station.uuid, "state": 0},
    )


# agent_installation's event codes (the Dr.Web seed's): 1 successfully completed, 2 rejected.
INSTALLATION_COMPLETED = 1
INSTALLATION_REJECTED = 2


def agent_installation(
    session: Session,
    station_id: int | None,
    installation: dict[str, str],
    address: str,
    name: str,
    event: int,
    message: str = "",
) -> None:
    """An installing agent's enrollment (``garrison-agent install``): ``installation`` is
    the ``id`` and ``sessionid`` it sent."""
    emit(
        session,
        "agent_installation",
        station_id,
        {
            "id": installation.get("id"),
            "address": address,
            "station": name,
            "event": event,
            "message": message,
            "sessionid": installation.get("sessionid"),
        },
    )


def station_deleted(session: Session, station_id: int, login: str) -> None:
    emit(session, "station_deleted", station_id, {"login": login, "id": station_id})


def station_geolocation_changed(
    session: Session, station: Station, latitude: float, longitude: float
) -> None:
    """The seed's arguments (its comment spells the station name ``args.name``): the
    coordinates as numbers of at most six decimals, ``DD.DDDDDD``."""
    emit(
        session,
        "station_geolocation_changed",
        station.id,
        {
            **station_args(station),
            "name": station.hostname or station.uuid,
            "latitude": latitude,
            "longitude": longitude,
        },
    )


def station_connected(session: Session, station: Station) -> None:
    name = station.hostname or station.uuid
    emit(
        session,
        "station_connected",
        station.id,
        {
            **station_args(station),
            "name": name,
            "os": station.os_name,
            "platform": station.os_platform,
            "compsid": station.uuid,
            "compmac": compmac(station),
        },
    )


def authorization_failed(
    session: Session,
    reason: str,
    address: str,
    station: Station | None = None,
    name: str = "",
    suppressed: int | None = None,
) -> None:
    """``suppressed``: the failures from this address not reported since its last event
    (requests are rate-limited per address, see ``stations/failures.py``)."""
    logs.authorization_failed(station.id if station else None, address, reason)
    emit(
        session,
        "station_authorization_failed",
        station.id if station else None,
        {
            "id": station.id if station else None,
            "address": address,
            "station": (station.hostname or station.uuid) if station else (name or None),
            "reason": reason,
            "type": "station",
            "compsid": station.uuid if station else (name or None),
            "compmac": compmac(station) if station else None,
            "suppressed": suppressed,
        },
    )


def authorization_args(
    station: Station, online: bool, new_name: str, new_address: str
) -> dict[str, Any]:
    return {
        "id": station.id,
        "connected": online,
        "current_address": station.address if online else "",
        "current_name": station.hostname or station.uuid,
        "last_address": station.address,
        "last_time": format_timestamp(station.last_seen),
        "last_server": SERVER_NAME,
        "new_name": new_name,
        "new_address": new_address,
    }


def authorization_in_progress(session: Session, args: dict[str, Any]) -> None:
    emit(session, "station_authorization_in_progress", args["id"], args)


def task_executed(
    session: Session,
    station: Station,
    job_id: int,
    job_type: str,
    done: bool,
    message: str,
    end: dt.datetime | None,
) -> None:
    emit(
        session,
        "task_executed",
        station.id,
        {
            **station_args(station),
            "done": done,
            "time": format_timestamp(end or utcnow()),
            "name": job_type,
            "job": job_id,
            "error": message[:4000],
        },
    )


def scan_statistics(
    session: Session,
    station: Station,
    scanned: int,
    infected: int,
    suspicious: int,
    seconds: int,
    moved: int = 0,
    deleted: int = 0,
) -> None:
    emit(
        session,
        "station_scan_statistics",
        station.id,
        {
            **station_args(station),
            "time": format_timestamp(utcnow()),
            "scanned": scanned,
            "infected": infected,
            "suspicious": suspicious,
            "elapsedtime": seconds,
            "modifications": 0,
            "cured": 0,
            "deleted": deleted,
            "renamed": 0,
            "moved": moved,
            "locked": 0,
            "errors": 0,
        },
    )


@dataclass(frozen=True)
class Threat:
    virus: str
    path: str
    action: str
    detected: dt.datetime
    sha256: str | None = None
    # The id the agent gave this detection beforehand (its alert's ``info.event_uuid``), so
    # that a sample it uploads later names this event: ``PUT /api/files/…?alert=<uuid>``.
    event_uuid: str | None = None


def threats_detected(session: Session, station: Station, threats: Sequence[Threat]) -> None:
    """One threat_detected event per new alert, appended together."""
    logs.threats_detected(station.id, [t.virus for t in threats])
    base = station_args(station)
    emit_many(
        session,
        "threat_detected",
        station.id,
        [
            {
                **base,
                "time": format_timestamp(t.detected),
                "virus": t.virus,
                "object": t.path,
                "action": t.action,
                "objecttype": 0,
                "compsid": station.uuid,
                "compmac": compmac(station),
                "sha256": t.sha256,
            }
            for t in threats
        ],
        [f"s{station.id}:{t.event_uuid}" if t.event_uuid else None for t in threats],
    )


def state_reported(
    session: Session, station: Station, modules: Sequence[dict[str, Any]], avdetails: Sequence[Any]
) -> None:
    """virus_bases_received and components_list_received from a State report, and
    station_update_failed / station_reboot_required when it says so."""
    base = station_args(station)
    bases: dict[str, Any] = {**base, "count": len(modules)}
    components: dict[str, Any] = {**base, "count": len(modules)}
    for i, module in enumerate(modules):
        bases[f"name_{i}"] = module["name"]
        bases[f"type_{i}"] = module.get("mod_status") or None
        bases[f"issued_{i}"] = module.get("mod_update_time")
        bases[f"version_{i}"] = module.get("mod_version")
        bases[f"records_{i}"] = module.get("mod_records")
        bases[f"sha256_{i}"] = module.get("sha256")
        components[f"component_{i}"] = module["name"]
        components[f"time_{i}"] = module.get("mod_update_time")
    emit(session, "virus_bases_received", station.id, bases)
    emit(session, "components_list_received", station.id, components)
    for module in modules:
        status = str(module.get("mod_status") or "").lower()
        if status in UPDATE_FAILED_STATUSES:
            emit(
                session,
                "station_update_failed",
                station.id,
                {
                    **base,
                    "product": module["name"],
                    "description": f"module {module['name']} reports {status}",
                    "from_revision_date": module.get("mod_update_time"),
                },
            )
    for item in avdetails:
        if (
            isinstance(item, dict)
            and str(item.get("attr", "")).lower() in REBOOT_ATTRS
            and str(item.get("value", "")).lower() in ("1", "true", "yes")
        ):
            emit(
                session,
                "station_reboot_required",
                station.id,
                {
                    **base,
                    "product": station.antivirus_name,
                    "description": "the station reports that it must be rebooted",
                },
            )
            break


def datetime_error(
    session: Session, station: Station, station_time: dt.datetime, valid_delta_seconds: int
) -> bool:
    now = utcnow()
    if abs((station_time - now).total_seconds()) <= valid_delta_seconds:
        return False
    millis = int(station_time.timestamp() * 1000)
    emit(
        session,
        "station_datetime_error",
        station.id,
        {
            **station_args(station),
            "now": int(now.timestamp() * 1000),
            "time": millis,
            "date": millis,
            "valid_delta": valid_delta_seconds * 1000,
        },
    )
    return True


def disconnected(session: Session, station_id: int, when: dt.datetime) -> None:
    """The station went offline at ``when`` (see ``stations/transitions.py``)."""
    emit(session, "DISCONNECTED", station_id, {"ts": format_timestamp(when)})
