"""Alert triage: assignment and comments

Revision ID: 0024
Revises: 0020

``alerts.assigned_to`` / ``assigned_at``: the user an alert is assigned to, and since when
(empty for the alerts already stored). ``alert_comments``: notes on an alert by their author;
deleting an alert deletes its comments.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("assigned_to", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_alerts_assigned_to"), "alerts", ["assigned_to"], unique=False)
    op.create_table(
        "alert_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_comments_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_comments")),
    )
    op.create_index(
        op.f("ix_alert_comments_alert_id"), "alert_comments", ["alert_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_comments_alert_id"), table_name="alert_comments")
    op.drop_table("alert_comments")
    op.drop_index(op.f("ix_alerts_assigned_to"), table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("assigned_at")
        batch.drop_column("assigned_to")
