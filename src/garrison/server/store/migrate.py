"""Alembic, driven from code: the migrations ship inside the package."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from garrison.server.store.engine import normalize_url, reporting_unreachable

MIGRATIONS = Path(__file__).with_name("migrations")


class _WithoutStartupChatter(logging.Filter):
    """Alembic says which dialect implementation it picked ("Context impl SQLiteImpl.",
    "Will assume non-transactional DDL.") at every start, migration or not; what it logs
    for a migration it runs ("Running upgrade ...") stays."""

    CHATTER = ("Context impl ", "Will assume ")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.CHATTER)


logging.getLogger("alembic.runtime.migration").addFilter(_WithoutStartupChatter())


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's ini interpolation treats % specially; a password may hold one.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Raises DatabaseUnreachableError when the database cannot be reached."""
    with reporting_unreachable():
        command.upgrade(alembic_config(url), revision)


def current_head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
