"""SQLite commits are synced to disk (``PRAGMA synchronous=FULL``) unless the operator
chooses otherwise: in WAL mode NORMAL can lose the last acknowledged events on a power
loss.  GARRISON_SQLITE_SYNCHRONOUS=normal is the documented, faster trade-off."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from garrison.server.app import create_app
from garrison.server.settings import Settings
from garrison.server.store.engine import Database
from garrison.server.store.migrate import upgrade

FULL, NORMAL = 2, 1  # what PRAGMA synchronous answers


def synchronous(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(text("PRAGMA synchronous")).scalar_one())


def test_sqlite_commits_are_synced_by_default(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        assert synchronous(db) == FULL
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("setting", "expected"), [(None, FULL), ("full", FULL), ("NORMAL", NORMAL)]
)
def test_the_server_uses_the_setting(tmp_path: Path, setting: str | None, expected: int) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    upgrade(url)
    extra = {} if setting is None else {"sqlite_synchronous": setting}
    settings = Settings(data_dir=tmp_path / "data", database_url=url, **extra)  # type: ignore[arg-type]
    ctx = create_app(settings).state.ctx
    try:
        assert synchronous(ctx.db) == expected
    finally:
        ctx.db.dispose()


def test_an_unknown_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="sqlite_synchronous"):
        Settings(data_dir=tmp_path, sqlite_synchronous="off")
