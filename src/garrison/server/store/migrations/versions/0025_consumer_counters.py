"""Consumer counters

Revision ID: 0025
Revises: 0024

``consumer_cursors`` gains its counters, added to by every node in the transaction that
moves the cursor: ``handled`` (events), ``failures`` (failed attempts), ``last_error`` and
``last_error_at``.  Cursors already stored start at zero.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | Sequence[str] | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consumer_cursors") as batch:
        batch.add_column(sa.Column("handled", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("failures", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consumer_cursors") as batch:
        batch.drop_column("last_error_at")
        batch.drop_column("last_error")
        batch.drop_column("failures")
        batch.drop_column("handled")
