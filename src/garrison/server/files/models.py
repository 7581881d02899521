"""Collected files: one content-addressed blob per SHA-256, kept as chunks in the database
(so that every node of a PostgreSQL deployment reads the same bytes), and one upload row per
station, job or alert that brought it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from garrison.server.store.base import Base, utcnow


class StoredFile(Base):
    __tablename__ = "stored_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    chunks: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FileChunk(Base):
    __tablename__ = "file_chunks"

    sha256: Mapped[str] = mapped_column(
        ForeignKey("stored_files.sha256", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class FileUpload(Base):
    """Who brought a file, for which job or alert, and when (the listing and the quota)."""

    __tablename__ = "file_uploads"
    __table_args__ = (
        Index("ix_file_uploads_station_id", "station_id"),
        Index("ix_file_uploads_sha256", "sha256"),
        Index("ix_file_uploads_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("stored_files.sha256", ondelete="CASCADE"))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    alert_uid: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(4096), default="")
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
