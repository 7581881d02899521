"""Reads and rules on the issued client certificates."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from garrison.server.stations.models import Station
from garrison.server.store.base import utcnow
from garrison.server.tls.authority import Issued
from garrison.server.tls.models import ClientCertificate


def record(session: Session, station_id: int, station_uuid: str, issued: Issued) -> None:
    """Note a new certificate; the station's earlier ones are superseded (revoked)."""
    session.execute(
        update(ClientCertificate)
        .where(ClientCertificate.station_id == station_id)
        .where(ClientCertificate.superseded_at.is_(None))
        .values(superseded_at=utcnow())
    )
    session.add(
        ClientCertificate(
            serial=issued.serial,
            station_id=station_id,
            station_uuid=station_uuid,
            not_after=issued.not_after,
        )
    )


def revoked_serials(session: Session, now: dt.datetime | None = None) -> list[str]:
    """Unexpired certificates whose station is gone or that a newer one superseded (an
    expired one is refused without being listed)."""
    now = now or utcnow()
    gone = ~select(Station.id).where(Station.id == ClientCertificate.station_id).exists()
    rows = session.scalars(
        select(ClientCertificate.serial)
        .where(ClientCertificate.not_after > now)
        .where(or_(gone, ClientCertificate.superseded_at.is_not(None)))
        .order_by(ClientCertificate.serial)
    )
    return list(rows)
