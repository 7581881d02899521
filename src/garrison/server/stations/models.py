from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, Float, ForeignKey, String, Table, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from garrison.common.vocabulary import AgentKind
from garrison.server.store.base import Base, utcnow

station_groups = Table(
    "station_groups",
    Base.metadata,
    Column("station_id", ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class Station(Base):
    """An enrolled agent.  ``id`` is the Armadito ``agent_id``."""

    __tablename__ = "stations"
    # SQLite would otherwise reuse a deleted newest station's id (and attach its history).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    hostname: Mapped[str] = mapped_column(String(255), default="", index=True)
    os_name: Mapped[str] = mapped_column(String(64), default="")
    os_platform: Mapped[str] = mapped_column(String(128), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    mac: Mapped[str] = mapped_column(String(64), default="")
    antivirus_name: Mapped[str] = mapped_column(String(64), default="")
    antivirus_version: Mapped[str] = mapped_column(String(64), default="")
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    # An AgentKind: which job types the agent can run.
    agent_kind: Mapped[str] = mapped_column(String(16), default=AgentKind.ARMADITO)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    enrolled_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    last_alert_at: Mapped[dt.datetime | None]
    # False once the check-in timeout passed (DISCONNECTED emitted); True again on return.
    connected: Mapped[bool] = mapped_column(default=True, server_default=true())
    # Set when the authorization procedure denied the station as it came back; its requests
    # are refused until an administrator or a procedure allows it (clears this).
    denied_at: Mapped[dt.datetime | None]
    # Where the station is (DD.DDDDDD degrees): set by an administrator or reported by the
    # agent from its configuration; both or neither.
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    enrollment_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollment_keys.id", ondelete="SET NULL")
    )

    groups: Mapped[list[Group]] = relationship(
        secondary=station_groups, back_populates="stations", lazy="selectin"
    )


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    stations: Mapped[list[Station]] = relationship(
        secondary=station_groups, back_populates="groups", lazy="raise"
    )
