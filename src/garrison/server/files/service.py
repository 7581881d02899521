"""Collected files: content-addressed blobs in the database, the size cap, each station's
quota and the retention.

The bytes are kept as 1 MiB chunks in ``file_chunks``: on SQLite that is the data directory's
database, on PostgreSQL the one database every node already shares, so any node serves a
download whichever node took the upload (docs/operations.md).  A blob is written once: the
``stored_files`` row is inserted first, and a second upload of the same bytes (from another
station, or on another node at the same moment, which waits for the first insert's commit)
finds it and only records its upload.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from garrison.server.errors import NotFoundError, PayloadTooLargeError
from garrison.server.files.models import FileChunk, FileUpload, StoredFile
from garrison.server.options import service as options
from garrison.server.store.base import utcnow
from garrison.server.store.upsert import insert_ignore

CHUNK_BYTES = 1 << 20
PATH_LENGTH = 4096


def used_bytes(session: Session, station_id: int) -> int:
    """The bytes of the distinct files this station's uploads hold (its quota's use)."""
    held = select(FileUpload.sha256).where(FileUpload.station_id == station_id).distinct()
    total = session.scalar(
        select(func.coalesce(func.sum(StoredFile.size), 0)).where(StoredFile.sha256.in_(held))
    )
    return int(total or 0)


@dataclass(frozen=True)
class Cap:
    """How much one more upload from a station may hold, and why it is that much."""

    max_bytes: int  # the file size limit
    quota_left: int  # what the station's quota still allows

    @property
    def bytes(self) -> int:
        return max(0, min(self.max_bytes, self.quota_left))

    def refuse(self, size: int) -> None:
        """413 with the reason, when ``size`` bytes do not fit."""
        if size > self.max_bytes:
            raise PayloadTooLargeError(
                f"the file is {size} bytes; files may be at most {self.max_bytes} bytes "
                "(setting file_max_bytes)"
            )
        if size > self.quota_left:
            raise PayloadTooLargeError(
                f"the file is {size} bytes and over this station's quota: "
                f"{max(0, self.quota_left)} bytes left (setting file_quota_bytes)"
            )


def cap_for(session: Session, station_id: int) -> Cap:
    quota = options.get(session, "file_quota_bytes")
    return Cap(options.get(session, "file_max_bytes"), quota - used_bytes(session, station_id))


def holds(session: Session, station_id: int, sha256: str) -> bool:
    """Whether this station uploaded these bytes already (they count in its quota)."""
    return (
        session.scalar(
            select(FileUpload.id)
            .where(FileUpload.station_id == station_id, FileUpload.sha256 == sha256)
            .limit(1)
        )
        is not None
    )


def store(session: Session, sha256: str, size: int, chunks: Iterable[bytes]) -> bool:
    """Keep the blob (``chunks`` of :data:`CHUNK_BYTES`, the last one shorter) unless it is
    kept already; True when this call stored it.  Chunks are written one at a time, so a
    large file is never whole in memory."""
    count = (size + CHUNK_BYTES - 1) // CHUNK_BYTES
    inserted = insert_ignore(
        session,
        StoredFile.__table__,  # type: ignore[arg-type]
        {"sha256": sha256, "size": size, "chunks": count, "created_at": utcnow()},
    )
    if not inserted:
        return False
    written = 0
    for idx, data in enumerate(chunks):
        session.execute(
            FileChunk.__table__.insert(),  # type: ignore[attr-defined]
            {"sha256": sha256, "idx": idx, "data": data},
        )
        written += 1
    if written != count:
        raise ValueError(f"{written} chunks given for a {size}-byte file, not {count}")
    return True


def record_upload(
    session: Session,
    sha256: str,
    size: int,
    station_id: int,
    job_id: int | None,
    alert_uid: str | None,
    path: str,
) -> FileUpload:
    """One row per (station, file, job or alert): an agent's retried upload adds none."""
    found = session.scalar(
        select(FileUpload).where(
            FileUpload.station_id == station_id,
            FileUpload.sha256 == sha256,
            FileUpload.job_id.is_(None) if job_id is None else FileUpload.job_id == job_id,
            FileUpload.alert_uid.is_(None)
            if alert_uid is None
            else FileUpload.alert_uid == alert_uid,
        )
    )
    if found is not None:
        found.created_at = utcnow()  # the retention counts from the last upload
        return found
    upload = FileUpload(
        sha256=sha256,
        size=size,
        station_id=station_id,
        job_id=job_id,
        alert_uid=alert_uid,
        path=path[:PATH_LENGTH],
        created_at=utcnow(),
    )
    session.add(upload)
    session.flush()
    return upload


def uploaded_for_job(session: Session, station_id: int, job_id: int, sha256: str) -> bool:
    return (
        session.scalar(
            select(FileUpload.id)
            .where(
                FileUpload.station_id == station_id,
                FileUpload.job_id == job_id,
                FileUpload.sha256 == sha256,
            )
            .limit(1)
        )
        is not None
    )


def get(session: Session, sha256: str) -> StoredFile:
    found = session.get(StoredFile, sha256)
    if found is None:
        raise NotFoundError(f"no stored file {sha256}", field="sha256")
    return found


def chunks(session: Session, sha256: str) -> Iterator[bytes]:
    """The blob's bytes, chunk by chunk (one row read at a time)."""
    count = get(session, sha256).chunks
    for idx in range(count):
        data = session.scalar(
            select(FileChunk.data).where(FileChunk.sha256 == sha256, FileChunk.idx == idx)
        )
        if data is None:
            raise NotFoundError(f"stored file {sha256} lost its chunk {idx}", field="sha256")
        yield bytes(data)


def uploads(
    session: Session,
    *,
    sha256: str | None = None,
    station_id: int | None = None,
    job_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[FileUpload], int]:
    query = select(FileUpload)
    if sha256 is not None:
        query = query.where(FileUpload.sha256 == sha256)
    if station_id is not None:
        query = query.where(FileUpload.station_id == station_id)
    if job_id is not None:
        query = query.where(FileUpload.job_id == job_id)
    total = session.scalar(query.with_only_columns(func.count(FileUpload.id)))
    rows = session.scalars(
        query.order_by(FileUpload.created_at.desc(), FileUpload.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


def expire(session: Session, now: dt.datetime | None = None) -> int:
    """Retention: uploads older than ``file_retention_days`` go, and with them every blob no
    upload holds any more.  Returns how many blobs were deleted."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=options.get(session, "file_retention_days"))
    session.execute(delete(FileUpload).where(FileUpload.created_at < cutoff))
    held = select(FileUpload.sha256).distinct()
    orphans = list(
        session.scalars(
            select(StoredFile.sha256).where(
                StoredFile.sha256.not_in(held), StoredFile.created_at < cutoff
            )
        )
    )
    if orphans:
        session.execute(delete(FileChunk).where(FileChunk.sha256.in_(orphans)))
        session.execute(delete(StoredFile).where(StoredFile.sha256.in_(orphans)))
    return len(orphans)
