from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from garrison.common.vocabulary import JobStatus
from garrison.server.store.base import Base, utcnow


class Job(Base):
    """What an administrator asked for; each target station has its own :class:`JobTarget`."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int]
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    # A hunt's job: no Getjobs hands it out after this (NULL: never expires).
    expires_at: Mapped[dt.datetime | None]


class JobTarget(Base):
    __tablename__ = "job_targets"
    __table_args__ = (
        # Getjobs: a station's queued jobs, highest priority first, oldest first.
        Index("ix_job_targets_queue", "station_id", "status", "priority", "job_id"),
    )

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    station_id: Mapped[int] = mapped_column(
        ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True
    )
    # Copied from the job so the queue index alone orders Getjobs.
    priority: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    downloaded_at: Mapped[dt.datetime | None]
    start_time: Mapped[dt.datetime | None]
    end_time: Mapped[dt.datetime | None]
    code: Mapped[int | None]
    message: Mapped[str | None] = mapped_column(Text)
    # A Garrison agent's structured result (RESPONSE-WIRE.md), at most 1 MiB serialised.
    result: Mapped[dict[str, Any] | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
