"""Login lockouts

Revision ID: 0007
Revises: 0006

``login_lockouts``: per username, the consecutive failed password logins and until when
the account is locked (see ``users.lockout``).  Empty at first: nobody is locked.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_lockouts",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_login_lockouts")),
    )
    op.create_index(
        op.f("ix_login_lockouts_last_failed_at"),
        "login_lockouts",
        ["last_failed_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_login_lockouts_last_failed_at"), table_name="login_lockouts")
    op.drop_table("login_lockouts")
