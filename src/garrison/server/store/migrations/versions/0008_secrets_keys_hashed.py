"""Enrollment keys stored hashed

Revision ID: 0008
Revises: 0007

``enrollment_keys.key`` (the key in clear) becomes ``key_hash``, its SHA-256 in hex (what
``garrison.common.tokens.token_hash`` makes), and ``key_prefix``, its first group.  Existing
keys are hashed here, so they keep working; their text cannot be shown any more.  The
downgrade cannot bring the text back: it keeps the digest in ``key``, and those keys no
longer enroll.
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = sa.table(
    "enrollment_keys",
    sa.column("id", sa.Integer()),
    sa.column("key", sa.String()),
    sa.column("key_hash", sa.String()),
    sa.column("key_prefix", sa.String()),
)


def upgrade() -> None:
    # enrollment_keys is not one of 0004's AUTOINCREMENT tables: SQLite may rebuild it.
    with op.batch_alter_table("enrollment_keys") as batch:
        batch.add_column(sa.Column("key_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("key_prefix", sa.String(length=5), nullable=True))
    bind = op.get_bind()
    for key_id, text in bind.execute(sa.select(KEYS.c.id, KEYS.c.key)).all():
        normalized = str(text).strip().upper()
        bind.execute(
            KEYS.update()
            .where(KEYS.c.id == key_id)
            .values(
                key_hash=hashlib.sha256(normalized.encode("utf-8")).hexdigest(),
                key_prefix=normalized[:5],
            )
        )
    with op.batch_alter_table("enrollment_keys") as batch:
        batch.alter_column("key_hash", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("key_prefix", existing_type=sa.String(length=5), nullable=False)
        batch.drop_constraint("uq_enrollment_keys_key", type_="unique")
        batch.drop_column("key")
        batch.create_unique_constraint("uq_enrollment_keys_key_hash", ["key_hash"])


def downgrade() -> None:
    with op.batch_alter_table("enrollment_keys") as batch:
        batch.add_column(sa.Column("key", sa.String(length=64), nullable=True))
    bind = op.get_bind()
    bind.execute(KEYS.update().values(key=KEYS.c.key_hash))
    with op.batch_alter_table("enrollment_keys") as batch:
        batch.alter_column("key", existing_type=sa.String(length=64), nullable=False)
        batch.drop_constraint("uq_enrollment_keys_key_hash", type_="unique")
        batch.drop_column("key_hash")
        batch.drop_column("key_prefix")
        batch.create_unique_constraint("uq_enrollment_keys_key", ["key"])
