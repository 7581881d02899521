from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from garrison.server.store.base import Base, utcnow

DEFAULT_SCOPE = "default"
SERVER_ROW = 1


class RuleSet(Base):
    """A named rule set of one kind (``formats.KINDS``); its content lives in its versions."""

    __tablename__ = "content_rulesets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    latest: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")


class RuleVersion(Base):
    """One version of a rule set: its content, content-addressed by ``sha256``."""

    __tablename__ = "content_versions"
    __table_args__ = (Index("ix_content_versions_sha256", "sha256"),)

    ruleset_id: Mapped[int] = mapped_column(
        ForeignKey("content_rulesets.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    records: Mapped[int]
    # The bundle file name's extension (``formats.extension``): hdb and hsb differ by hash.
    ext: Mapped[str] = mapped_column(String(8))
    content: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(String(1024), default="")
    author: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Kind-specific facts the validator found (a script's interpreter, a hash list's types).
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # A ``script`` version enters manifests only once an administrator approved it.
    approved_at: Mapped[dt.datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(64))


class ContentAssignment(Base):
    """What the stations of a scope get: the default (``scope`` "default") or a group's
    (``scope`` "group:<id>", deleted with its group).  ``rules`` is a list of
    ``{"name", "version"}`` (``"latest"`` or a version number), or None: every rule set at
    its latest version."""

    __tablename__ = "content_assignments"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), unique=True
    )
    # Among a station's groups with an assignment, the highest priority wins (then the group
    # name, in alphabetical order), as for sensor policies.
    priority: Mapped[int] = mapped_column(default=0)
    rules: Mapped[list[Any] | None] = mapped_column(default=None)
    allow_unsigned_sources: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="")


class ContentServer(Base):
    """One row: the install's ``server_id`` and the server-wide content ``serial``."""

    __tablename__ = "content_server"

    id: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[str] = mapped_column(String(36))
    serial: Mapped[int]
    serial_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ContentSerial(Base):
    """What every scope's bundle was at one serial (the files resolved to versions, the
    policy): the manifests of that serial are built from it, and a station may still fetch
    the files of its previous serials' manifests.  Only the latest ones are kept."""

    __tablename__ = "content_serials"

    serial: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    issued: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(String(64), default="")
    key_id: Mapped[str] = mapped_column(String(16))
    snapshot: Mapped[dict[str, Any]]


class ContentKey(Base):
    """A content signing key's public half (the private one is a file of the data dir).
    The current key has no ``valid_until``; a rotated one is valid until the overlap ends.
    ``statement`` is the rotation statement that introduced the key (signed by the old one)."""

    __tablename__ = "content_keys"
    __table_args__ = (UniqueConstraint("public_key", name="uq_content_keys_public_key"),)

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[dt.datetime | None]
    valid_until: Mapped[dt.datetime | None]
    statement: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class AgentPackage(Base):
    """An agent package an administrator uploaded (``garrison.common.agent_package``), with
    the content key's signature over its statement (``packages.statement``)."""

    __tablename__ = "agent_packages"
    __table_args__ = (UniqueConstraint("version", "architecture"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    architecture: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str] = mapped_column(Text, default="")
    uploaded_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
