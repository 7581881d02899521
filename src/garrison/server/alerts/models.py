from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from garrison.server.store.base import Base, utcnow


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_station_time", "station_id", "detection_time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    threat_name: Mapped[str] = mapped_column(String(255), index=True)
    filepath: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64), default="")
    module_name: Mapped[str] = mapped_column(String(64), default="")
    antivirus: Mapped[str] = mapped_column(String(64), default="")
    detection_time: Mapped[dt.datetime]
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # SHA-256 of "threat;path;time;agent_id;antivirus;": a repeated alert is stored once.
    checksum: Mapped[str] = mapped_column(String(64), unique=True)
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    # Triage: the user the alert is assigned to (a username, kept if the user goes).
    assigned_to: Mapped[str | None] = mapped_column(String(64), index=True)
    assigned_at: Mapped[dt.datetime | None]


class AlertComment(Base):
    """A note on an alert by the user who wrote it: the triage's history."""

    __tablename__ = "alert_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
