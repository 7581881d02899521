"""Signed content: rule sets, versions, assignments, serial, keys

Revision ID: 0011
Revises: 0010

The content repository of issue 15 (``garrison.server.content``): ``content_rulesets`` and
their ``content_versions``, per-scope ``content_assignments``, the ``content_server`` row
(the install's ``server_id`` and the content serial, made here), the per-serial
``content_serials`` snapshots, the public halves of the ``content_keys``; and the content
serial a station reports (``station_states.content_serial``).
"""

import datetime as dt
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "content_rulesets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("latest", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_rulesets")),
        sa.UniqueConstraint("name", name=op.f("uq_content_rulesets_name")),
    )
    op.create_table(
        "content_versions",
        sa.Column("ruleset_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("ext", sa.String(length=8), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("comment", sa.String(length=1024), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ruleset_id"],
            ["content_rulesets.id"],
            name=op.f("fk_content_versions_ruleset_id_content_rulesets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ruleset_id", "version", name=op.f("pk_content_versions")),
    )
    op.create_index("ix_content_versions_sha256", "content_versions", ["sha256"])
    op.create_table(
        "content_assignments",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=True),
        sa.Column("allow_unsigned_sources", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_content_assignments_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_content_assignments")),
        sa.UniqueConstraint("group_id", name=op.f("uq_content_assignments_group_id")),
    )
    server = op.create_table(
        "content_server",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.String(length=36), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.Column("serial_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_server")),
    )
    op.create_table(
        "content_serials",
        sa.Column("serial", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("issued", TZ, nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_content_serials")),
    )
    op.create_table(
        "content_keys",
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("retired_at", TZ, nullable=True),
        sa.Column("valid_until", TZ, nullable=True),
        sa.Column("statement", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_content_keys")),
        sa.UniqueConstraint("public_key", name="uq_content_keys_public_key"),
    )
    with op.batch_alter_table("station_states") as batch:
        batch.add_column(sa.Column("content_serial", sa.Integer(), nullable=True))
    # The install's id: the server has none before this version, so one is made here.
    op.bulk_insert(
        server,
        [
            {
                "id": 1,
                "server_id": str(uuid.uuid4()),
                "serial": 1,
                "serial_at": dt.datetime.now(dt.UTC),
            }
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("station_states") as batch:
        batch.drop_column("content_serial")
    op.drop_table("content_keys")
    op.drop_table("content_serials")
    op.drop_table("content_server")
    op.drop_table("content_assignments")
    op.drop_index("ix_content_versions_sha256", table_name="content_versions")
    op.drop_table("content_versions")
    op.drop_table("content_rulesets")
