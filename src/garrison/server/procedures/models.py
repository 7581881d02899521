from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from garrison.server.store.base import Base, utcnow

# The set every procedure was in before sets existed, and where ``PUT /procedures/{event}``
# without ``?set=`` writes: it always exists (it cannot be deleted).
DEFAULT_SET = "default"


class ProcedureSet(Base):
    """A named, ordered set of procedures (Dr.Web's "procedure from next set will be called
    if returned nothing"): the enabled sets' procedures of an event run in ``position``
    order (``order`` in the admin API), each set holding at most one procedure per event."""

    __tablename__ = "procedure_sets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Unique: two sets never tie, so the chain's order is always the same.
    position: Mapped[int] = mapped_column(unique=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="")


class Procedure(Base):
    """The current Lua source of one event procedure (named as in the Dr.Web seed) in one
    set."""

    __tablename__ = "procedures"

    set_name: Mapped[str] = mapped_column(
        String(64),
        ForeignKey("procedure_sets.name", ondelete="CASCADE"),
        primary_key=True,
        server_default=DEFAULT_SET,
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="")


class ProcedureVersion(Base):
    """Every source a procedure has had in a set: the version history (kept when the
    procedure, or its set, is deleted)."""

    __tablename__ = "procedure_versions"

    set_name: Mapped[str] = mapped_column(String(64), primary_key=True, server_default=DEFAULT_SET)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")


class ProcedureError(Base):
    """A procedure run that failed or ran out of budget, kept with the event it ran for and
    the set the procedure is in."""

    __tablename__ = "procedure_errors"

    id: Mapped[int] = mapped_column(primary_key=True)
    procedure: Mapped[str] = mapped_column(String(64), index=True)
    set_name: Mapped[str] = mapped_column(
        String(64), default=DEFAULT_SET, server_default=DEFAULT_SET
    )
    event_seq: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
