from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from garrison.server.store.base import Base, utcnow


class StationState(Base):
    """The last antivirus state a station reported (State task)."""

    __tablename__ = "station_states"

    station_id: Mapped[int] = mapped_column(
        ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True
    )
    global_status: Mapped[str] = mapped_column(String(64), default="")
    global_update_time: Mapped[dt.datetime | None]
    modules: Mapped[list[Any]] = mapped_column(default=list)
    avdetails: Mapped[list[Any]] = mapped_column(default=list)
    # The content serial a Garrison agent reports installed (dbinfo.content_serial).
    content_serial: Mapped[int | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
