from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from garrison.server.store.base import Base, utcnow

CONFIG_KINDS = ("avconfig", "scheduler")


class ConfigBaseline(Base):
    """The first value any station reported for an attribute: shared by every station."""

    __tablename__ = "config_baseline"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    attr: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ConfigDifference(Base):
    """A station's value where it differs from the baseline; ``value`` None: it lacks the attr."""

    __tablename__ = "config_differences"

    station_id: Mapped[int] = mapped_column(
        ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    attr: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ConfigReport(Base):
    """When a station last reported each kind of configuration (and its scheduler name)."""

    __tablename__ = "config_reports"

    station_id: Mapped[int] = mapped_column(
        ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    reported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ConfigDesired(Base):
    """Configuration an administrator pushes; agents fetch it with GET /api/avconfigs|schedulers."""

    __tablename__ = "config_desired"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    attr: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
