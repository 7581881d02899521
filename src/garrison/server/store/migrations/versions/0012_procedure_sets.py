"""Procedure sets; station geolocation

Revision ID: 0012
Revises: 0011

``procedure_sets``: named, ordered sets of event procedures (issue 23).  The ``default``
set (order 0) is created here, and every procedure stored before this revision, with its
version history and its recorded failures, is moved into it: ``procedures`` and
``procedure_versions`` are keyed by (set, event) from now on.
``stations.latitude``/``longitude``: the station's location, NULL when unknown.
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT = "default"


def upgrade() -> None:
    sets = op.create_table(
        "procedure_sets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_procedure_sets")),
        sa.UniqueConstraint("position", name=op.f("uq_procedure_sets_position")),
    )
    op.bulk_insert(
        sets,
        [
            {
                "name": DEFAULT,
                "position": 0,
                "enabled": True,
                "updated_at": dt.datetime.now(dt.UTC),
                "updated_by": "system",
            }
        ],
    )
    with op.batch_alter_table("procedures") as batch:
        batch.add_column(
            sa.Column("set_name", sa.String(length=64), nullable=False, server_default=DEFAULT)
        )
        batch.drop_constraint("pk_procedures", type_="primary")
        batch.create_primary_key("pk_procedures", ["set_name", "name"])
        batch.create_foreign_key(
            op.f("fk_procedures_set_name_procedure_sets"),
            "procedure_sets",
            ["set_name"],
            ["name"],
            ondelete="CASCADE",
        )
    with op.batch_alter_table("procedure_versions") as batch:
        batch.add_column(
            sa.Column("set_name", sa.String(length=64), nullable=False, server_default=DEFAULT)
        )
        batch.drop_constraint("pk_procedure_versions", type_="primary")
        batch.create_primary_key("pk_procedure_versions", ["set_name", "name", "version"])
    op.add_column(
        "procedure_errors",
        sa.Column("set_name", sa.String(length=64), nullable=False, server_default=DEFAULT),
    )
    # Plain ADD COLUMNs: a batch operation could rebuild the SQLite table (and lose 0004).
    op.add_column("stations", sa.Column("latitude", sa.Float(), nullable=True))
    op.add_column("stations", sa.Column("longitude", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("stations", "longitude")
    op.drop_column("stations", "latitude")
    op.drop_column("procedure_errors", "set_name")
    # Only the default set's procedures fit the one-procedure-per-event schema.
    op.execute(sa.text("DELETE FROM procedures WHERE set_name <> :d").bindparams(d=DEFAULT))
    op.execute(sa.text("DELETE FROM procedure_versions WHERE set_name <> :d").bindparams(d=DEFAULT))
    with op.batch_alter_table("procedure_versions") as batch:
        batch.drop_constraint("pk_procedure_versions", type_="primary")
        batch.create_primary_key("pk_procedure_versions", ["name", "version"])
        batch.drop_column("set_name")
    with op.batch_alter_table("procedures") as batch:
        batch.drop_constraint(op.f("fk_procedures_set_name_procedure_sets"), type_="foreignkey")
        batch.drop_constraint("pk_procedures", type_="primary")
        batch.create_primary_key("pk_procedures", ["name"])
        batch.drop_column("set_name")
    op.drop_table("procedure_sets")
