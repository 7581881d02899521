from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from garrison.server.store.base import Base, utcnow

# SQLite makes only an INTEGER PRIMARY KEY an alias of the rowid (autoincrementing).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Event(Base):
    """The append-only event log.  ``seq`` is the log position consumers' cursors point at.

    On PostgreSQL the table is partitioned by ``time`` (see
    :mod:`garrison.server.events.partitions`): its keys there include ``time`` (primary key
    ``(seq, time)``, unique ``(uid, time)``), and a uid is kept unique by the append path's
    probe under the log's lock.  SQLite keeps the single table declared here."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_type_time", "type", "time"),
        Index("ix_events_station_time", "station_id", "time"),
        # A station's latest event of one type (its sensor status: the latest sensor_health).
        Index("ix_events_station_type_seq", "station_id", "type", "seq"),
        # Retention: a type's events by the time they arrived (they arrive in order, so
        # inserts append to the end of this index).
        Index("ix_events_type_received_at", "type", "received_at"),
        # Log positions must never be reused, even after retention empties the table.
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # The producer's event id: a retried batch stores each event once.
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    # Not a foreign key: a deleted station's history stays.
    station_id: Mapped[int | None]
    origin: Mapped[str] = mapped_column(String(8))  # "station" | "server"
    severity: Mapped[int] = mapped_column(SmallInteger)
    # The event's own time (the station's clock for station events): what searches show
    # and filter on.  ``received_at`` is the server's clock: what retention counts from.
    time: Mapped[dt.datetime] = mapped_column(index=True)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]]


class EventTerm(Base):
    """Searchable values of an event (hashes, process names, paths, users, hosts, IPs).

    ``time`` is the event's own time, copied: on PostgreSQL the terms are partitioned by it
    as the events are (a search's time range then prunes the terms' partitions too, and
    retention drops a day's terms with its events); on SQLite it bounds term lookups alike.
    """

    __tablename__ = "event_terms"
    __table_args__ = (Index("ix_event_terms_lookup", "role", "value", "seq"),)

    seq: Mapped[int] = mapped_column(
        BigId, ForeignKey("events.seq", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    time: Mapped[dt.datetime]


class ConsumerCursor(Base):
    """How far a consumer (procedures, an exporter…) has read the log.  A consumer works
    with this row locked (SELECT … FOR UPDATE), so on several nodes one instance at a time
    processes a batch, and its side effects commit with the new position."""

    __tablename__ = "consumer_cursors"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Counters since the cursor was made, added to by every node in the transaction that
    # moves the cursor: events handled, failed attempts and the last failure (an export
    # target's counters in the admin API and the console).
    handled: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    failures: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    last_error_at: Mapped[dt.datetime | None] = mapped_column(default=None)
