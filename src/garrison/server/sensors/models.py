from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from garrison.server.store.base import Base, utcnow

DEFAULT_SCOPE = "default"


class SensorPolicy(Base):
    """A partial sensor policy: the default one (``scope`` "default") or a group's
    (``scope`` "group:<id>"; deleted with its group).  ``settings`` holds only the keys the
    administrator set (``garrison.common.sensor_policy``)."""

    __tablename__ = "sensor_policies"

    # One row per scope: a PUT is an upsert on it, so two concurrent ones cannot make two.
    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), unique=True
    )
    # Among a station's groups, the higher priority wins a key both set (then the group
    # name, in alphabetical order).
    priority: Mapped[int] = mapped_column(default=0)
    settings: Mapped[dict[str, Any]]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
