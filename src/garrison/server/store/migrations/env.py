from __future__ import annotations

from alembic import context
from sqlalchemy import text

from garrison.server.store.engine import make_engine
from garrison.server.store.migrations import schema

MIGRATION_LOCK = 0x6A17751
config = context.config
target_metadata = schema.metadata


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("sqlalchemy.url is not set")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # Rebuilding a table (batch mode) drops the old one: with foreign keys on,
                # that would cascade into the rows that refer to it.
                connection.connection.driver_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA foreign_keys=OFF"
                )
            if connection.dialect.name == "postgresql":
                # Several nodes starting at once: one migrates, the others wait, then find
                # nothing left to do.
                connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
                connection.commit()
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported; run `garrison db upgrade`")
run_migrations()
