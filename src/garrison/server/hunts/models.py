"""Hunts: a question for every station a target matches, until it expires or is stopped."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from garrison.server.store.base import Base, utcnow


class Hunt(Base):
    """A hunt on disk is answered by its ``Hunt`` job's targets (one per station, made when
    the hunt is created and, for stations that match later, at their next Getjobs); a hunt
    over server telemetry (``SearchEvents``, ``IocSweep``) has no job and keeps its answer
    in ``server_result``."""

    __tablename__ = "hunts"
    __table_args__ = (Index("ix_hunts_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), unique=True
    )
    question: Mapped[dict[str, Any]]
    target: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    expires_at: Mapped[dt.datetime]
    stopped_at: Mapped[dt.datetime | None]
    stopped_by: Mapped[str] = mapped_column(String(64), default="")
    server_result: Mapped[dict[str, Any] | None]
