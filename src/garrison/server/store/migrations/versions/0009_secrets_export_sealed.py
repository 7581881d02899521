"""Export targets: sealed secrets

Revision ID: 0009
Revises: 0008

``export_targets.secrets``: the write-only values (webhook credential headers), each
encrypted with the data dir's secrets key (``export/secrets.py``).  Headers an older version
stored in clear in ``options`` are moved here, sealed, by the first start of this version
(``garrison serve``), which holds the key; a migration has no key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The default fills the existing rows; the model has none (every insert gives a value).
    with op.batch_alter_table("export_targets") as batch:
        batch.add_column(
            sa.Column("secrets", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("export_targets") as batch:
        batch.alter_column("secrets", existing_type=sa.JSON(), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("export_targets") as batch:
        batch.drop_column("secrets")
