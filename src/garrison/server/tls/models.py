from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from garrison.server.store.base import Base, utcnow


class ClientCertificate(Base):
    """A client certificate issued to a station (mutual TLS).

    No foreign key to ``stations`` on purpose: the row outlives its station, and a row whose
    station is gone is exactly a revoked certificate (``service.revoked_serials``), so
    deleting a station needs no step of its own to revoke it."""

    __tablename__ = "tls_client_certificates"

    serial: Mapped[str] = mapped_column(String(40), primary_key=True)  # hex
    station_id: Mapped[int] = mapped_column(index=True)
    station_uuid: Mapped[str] = mapped_column(String(36))
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    not_after: Mapped[dt.datetime]
    # Set when the station was issued a newer certificate: the older one is revoked.
    superseded_at: Mapped[dt.datetime | None]
