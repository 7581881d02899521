"""``garrison db upgrade`` and ``serve`` report a database they cannot use or reach in one
line, through the store's own errors (the CLI edge does not import SQLAlchemy)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from garrison.cli import server
from garrison.cli.main import app


def run(tmp_path: Path, url: str, *args: str) -> tuple[int, str]:
    env = {"GARRISON_DATABASE_URL": url, "GARRISON_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output + (result.stderr or "")


@pytest.mark.parametrize("command", [("db", "upgrade"), ("serve", "--port", "0")])
def test_an_unreachable_database_is_one_line_and_exit_1(
    tmp_path: Path, command: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    # serve would point the process-wide logging at CliRunner's stream, closed afterwards.
    monkeypatch.setattr(server, "configure_logging", lambda level: None)
    # Port 1 on the loopback refuses at once: nothing listens there.
    code, output = run(tmp_path, "postgresql://postgres@127.0.0.1:1/nothing", *command)
    assert code == 1, output
    assert "error: database unreachable:" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "url",
    [
        "mysql://somewhere/db",  # a backend Garrison does not support
        "postgresql+nosuchdriver://postgres@127.0.0.1/db",  # a driver SQLAlchemy does not know
    ],
)
def test_a_database_url_it_cannot_use_is_one_line_and_exit_1(tmp_path: Path, url: str) -> None:
    code, output = run(tmp_path, url, "db", "upgrade")
    assert code == 1, output
    assert "error: cannot use database:" in output
    assert "Traceback" not in output


def test_a_node_with_another_secrets_key_is_refused_at_start(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nodes of one database must share the secrets key: the second node's own key could
    not open what the first sealed, so it is refused before it serves, in one line."""
    from garrison.server.bootstrap import prepare
    from garrison.server.export.keycheck import SecretsKeyMismatchError
    from garrison.server.store.engine import Database

    monkeypatch.setattr(server, "configure_logging", lambda level: None)
    db = Database(database_url)
    try:
        prepare(db, tmp_path / "first", tmp_path / "first.key")
        prepare(db, tmp_path / "again", tmp_path / "first.key")  # the same key: accepted
        with pytest.raises(SecretsKeyMismatchError):
            prepare(db, tmp_path / "other", tmp_path / "other.key")
    finally:
        db.dispose()
    monkeypatch.setenv("GARRISON_SECRETS_KEY_FILE", str(tmp_path / "second.key"))
    code, output = run(tmp_path / "second", database_url, "serve", "--port", "0")
    assert code == 1, output
    assert "second.key is not the secrets key this database was set up with" in output
    assert "Traceback" not in output
    # One line (CliRunner's output holds stderr too, hence the set).
    assert len({line for line in output.splitlines() if line}) == 1, output
