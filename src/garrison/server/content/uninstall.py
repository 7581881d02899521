"""Uninstall tokens: per-station statements signed with the content key
(common/uninstall_token.py), so an agent refuses to uninstall without the server's word.

An administrator gets one with ``POST /admin/v1/stations/{id}/uninstall-token`` (for
``garrison-agent uninstall --token``, audited); the Uninstall job carries a fresh one, made
when the job is handed to the station.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from garrison.common import uninstall_token
from garrison.common.vocabulary import JobType
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.content.delivery import ContentDelivery
from garrison.server.content.service import rfc3339
from garrison.server.errors import InvalidInputError, NotFoundError
from garrison.server.jobs.reports import JobsFetched
from garrison.server.jobs.service import QueuedJob
from garrison.server.stations.models import Station
from garrison.server.store.base import utcnow

JOB_SECONDS = 24 * 3600  # an Uninstall job's token: the station may run it a day later
MAX_SECONDS = 30 * 24 * 3600


def sign(content: ContentDelivery, station: Station, seconds: int) -> tuple[str, dt.datetime]:
    key = content.ring.get(content.ring.current_id)
    if key is None:
        raise NotFoundError("this node has no content key")
    now = utcnow()
    expires = now + dt.timedelta(seconds=seconds)
    statement = {
        "type": uninstall_token.TYPE,
        "server_id": content.server_id,
        "station_uuid": station.uuid,
        "agent_id": station.id,
        "key_id": content.ring.current_id,
        "issued": rfc3339(now),
        "expires": rfc3339(expires),
    }
    signature = key.sign(uninstall_token.canonical(statement))
    return uninstall_token.encode(statement, signature), expires


def issue(
    content: ContentDelivery, session: Session, actor: Actor, station_id: int, seconds: int
) -> tuple[str, dt.datetime]:
    if not 60 <= seconds <= MAX_SECONDS:
        raise InvalidInputError(
            f"expires_in must be 60 to {MAX_SECONDS} seconds", field="expires_in"
        )
    station = session.get(Station, station_id)
    if station is None:
        raise NotFoundError(f"there is no station {station_id}")
    token, expires = sign(content, station, seconds)
    audit.record(
        session, actor, "station.uninstall_token", str(station_id), expires=rfc3339(expires)
    )
    return token, expires


def with_tokens(content: ContentDelivery, fetched: JobsFetched) -> JobsFetched:
    """Getjobs: an Uninstall job carries a token for the station it is handed to."""
    if not any(q.type == JobType.UNINSTALL for q in fetched.jobs):
        return fetched
    with content.db.reading() as session:
        station = session.get(Station, fetched.station_id)
        if station is None:
            return fetched
        session.expunge(station)
    out: list[QueuedJob] = []
    for queued in fetched.jobs:
        if queued.type == JobType.UNINSTALL:
            token, _ = sign(content, station, JOB_SECONDS)
            queued = QueuedJob(
                queued.id, queued.type, queued.priority, {**queued.params, "token": token}
            )
        out.append(queued)
    return JobsFetched(fetched.station_id, out)
