"""Stations denied by the authorization procedure

Revision ID: 0006
Revises: 0005

``stations.denied_at``: when the ``station_authorization_in_progress`` procedure answered
``'deny'`` as the station came back after being marked disconnected; NULL for a station
allowed to work (every station before this revision).  An administrator or a procedure
clears it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch operation could rebuild the SQLite table (and lose 0004).
    op.add_column("stations", sa.Column("denied_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # SQLite drops a column in place since 3.35; no table rebuild either.
    op.drop_column("stations", "denied_at")
