"""Sensor policy; the latest event of a type per station

Revision ID: 0010
Revises: 0009

``sensor_policies``: the default sensor policy and each group's (issue 14, item 2).
``ix_events_station_type_seq``: a station's latest event of one type (its latest
``sensor_health``, for the per-station sensor status) is one index probe, not a walk over
all of that station's events.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sensor_policies",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_sensor_policies_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_sensor_policies")),
        sa.UniqueConstraint("group_id", name=op.f("uq_sensor_policies_group_id")),
    )
    op.create_index("ix_events_station_type_seq", "events", ["station_id", "type", "seq"])


def downgrade() -> None:
    op.drop_index("ix_events_station_type_seq", table_name="events")
    op.drop_table("sensor_policies")
