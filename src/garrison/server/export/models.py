from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from garrison.server.store.base import Base, utcnow


class ExportTarget(Base):
    """A SIEM (or file, or webhook) that receives events in one format over one transport."""

    __tablename__ = "export_targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    format: Mapped[str] = mapped_column(String(16))
    transport: Mapped[str] = mapped_column(String(8))
    host: Mapped[str] = mapped_column(String(255), default="")
    port: Mapped[int] = mapped_column(default=0)
    path: Mapped[str] = mapped_column(Text, default="")  # file exporter
    url: Mapped[str] = mapped_column(Text, default="")  # HTTP exporter
    # Everything else (syslog envelope, framing, TLS, filter, aggregation, backlog…).
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Write-only values, sealed with the data dir's secrets key (export/secrets.py):
    # {"http_headers": {name: fernet token}}.
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
