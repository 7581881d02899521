"""Live response and hunts

Revision ID: 0013
Revises: 0012

Issue 17.  ``job_targets.result``: a Garrison agent's structured result.  ``jobs.expires_at``:
a hunt's job is not handed out after it.  ``hunts``: hunt definitions (target, expiry, stop).
``stored_files`` / ``file_chunks`` / ``file_uploads``: collected files, content-addressed,
kept in the database so that every node reads them.  ``content_versions.approved_at`` /
``approved_by``: a ``script`` version enters manifests only once approved.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs: a batch operation could rebuild the SQLite table.
    op.add_column("jobs", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("job_targets", sa.Column("result", sa.JSON(), nullable=True))
    op.add_column(
        "content_versions", sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("content_versions", sa.Column("approved_by", sa.String(length=64), nullable=True))
    op.create_table(
        "hunts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("question", sa.JSON(), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_by", sa.String(length=64), nullable=False),
        sa.Column("server_result", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_hunts_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hunts")),
        sa.UniqueConstraint("job_id", name=op.f("uq_hunts_job_id")),
    )
    op.create_index("ix_hunts_expires_at", "hunts", ["expires_at"], unique=False)
    op.create_table(
        "stored_files",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_stored_files")),
    )
    op.create_table(
        "file_chunks",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["stored_files.sha256"],
            name=op.f("fk_file_chunks_sha256_stored_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sha256", "idx", name=op.f("pk_file_chunks")),
    )
    op.create_table(
        "file_uploads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("alert_uid", sa.String(length=64), nullable=True),
        sa.Column("path", sa.String(length=4096), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_file_uploads_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["stored_files.sha256"],
            name=op.f("fk_file_uploads_sha256_stored_files"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["stations.id"],
            name=op.f("fk_file_uploads_station_id_stations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file_uploads")),
    )
    op.create_index("ix_file_uploads_created_at", "file_uploads", ["created_at"], unique=False)
    op.create_index("ix_file_uploads_sha256", "file_uploads", ["sha256"], unique=False)
    op.create_index("ix_file_uploads_station_id", "file_uploads", ["station_id"], unique=False)


def downgrade() -> None:
    op.drop_table("file_uploads")
    op.drop_table("file_chunks")
    op.drop_table("stored_files")
    op.drop_index("ix_hunts_expires_at", table_name="hunts")
    op.drop_table("hunts")
    op.drop_column("content_versions", "approved_by")
    op.drop_column("content_versions", "approved_at")
    op.drop_column("job_targets", "result")
    op.drop_column("jobs", "expires_at")
