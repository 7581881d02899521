"""Retention counts from receipt; alert info stored once, not nested in itself

Revision ID: 0005
Revises: 0004

Every event already has the time it was received (``received_at``, set by the server on
append since 0001), so no backfill is needed: retention now deletes by it, through an index
of its own.  Alerts stored before this revision hold the agent's ``info`` wrapped in a
second ``{"info": …}``; an object so wrapped is unwrapped (a scalar stays wrapped, as new
ones are: the column holds an object).
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000

alerts = sa.table("alerts", sa.column("id", sa.Integer()), sa.column("info", sa.JSON()))


def _unwrapped(info: Any) -> dict[str, Any] | None:
    """The agent's own object, when ``info`` is exactly ``{"info": {…}}``."""
    if not isinstance(info, dict) or len(info) != 1:
        return None
    inner = info.get("info")
    return inner if isinstance(inner, dict) else None


def _unwrap_alert_info() -> None:
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(alerts.c.id, alerts.c.info)
            .where(alerts.c.id > last)
            .order_by(alerts.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        changes = [
            {"row_id": row.id, "new_info": inner}
            for row in rows
            if (inner := _unwrapped(row.info)) is not None
        ]
        if changes:
            bind.execute(
                alerts.update()
                .where(alerts.c.id == sa.bindparam("row_id"))
                .values(info=sa.bindparam("new_info", type_=sa.JSON())),
                changes,
            )
        last = rows[-1].id


def upgrade() -> None:
    # A plain CREATE INDEX: a batch operation could rebuild the SQLite table (and lose 0004).
    op.create_index("ix_events_type_received_at", "events", ["type", "received_at"])
    _unwrap_alert_info()


def downgrade() -> None:
    # The alerts' info stays unwrapped: the wrapping was the defect, nothing relies on it.
    op.drop_index("ix_events_type_received_at", "events")
