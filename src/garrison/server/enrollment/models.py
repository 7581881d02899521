from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from garrison.server.store.base import Base, utcnow


class EnrollmentKey(Base):
    __tablename__ = "enrollment_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The key is shown once, at creation; kept are its SHA-256 (what an enrollment looks up)
    # and its first group, which tells keys apart in lists.  See enrollment/service.py.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(5))
    uses_total: Mapped[int]
    uses_count: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    description: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")
