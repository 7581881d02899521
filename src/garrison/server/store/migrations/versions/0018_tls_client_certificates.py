"""TLS client certificates

Revision ID: 0018
Revises: 0017

``tls_client_certificates``: one row per client certificate issued to a station for mutual
TLS (issue 21).  No foreign key to ``stations``: a row whose station was deleted is a
revoked certificate, listed in the server's CRL until it expires.  Empty at first.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tls_client_certificates",
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("station_uuid", sa.String(length=36), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_tls_client_certificates")),
    )
    op.create_index(
        op.f("ix_tls_client_certificates_station_id"),
        "tls_client_certificates",
        ["station_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_tls_client_certificates_station_id"), table_name="tls_client_certificates"
    )
    op.drop_table("tls_client_certificates")
