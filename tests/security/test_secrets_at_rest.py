"""Secrets are stored hashed: Garrison is secure by default.

A copy of the database must not let anyone act as an agent or an administrator: agent tokens
and admin API tokens are kept only as digests, passwords only as argon2 hashes, and none of
them appears anywhere in any table (audit log included).
"""

from __future__ import annotations

import re
import stat

import pytest
from argon2 import PasswordHasher
from sqlalchemy import inspect, text

from tests.conftest import Server
from tests.support import ArmaditoAgent

HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def database_dump(server: Server) -> str:
    """Every row of every table of the database, as text."""
    names = inspect(server.db.engine).get_table_names()
    assert {"stations", "api_tokens", "users"} <= set(names), names
    parts = []
    with server.db.reading() as session:
        for name in names:
            for row in session.execute(text(f'SELECT * FROM "{name}"')):
                parts.append(f"{name}: {tuple(row)!r}")
    return "\n".join(parts)


def assert_not_stored(server: Server, secret: str) -> None:
    dump = database_dump(server)
    assert secret not in dump
    # Nor its random part without the prefix.
    random_part = secret.split("_", 1)[-1]
    assert random_part not in dump


def column(server: Server, sql: str) -> list[str]:
    with server.db.reading() as session:
        return [row[0] for row in session.execute(text(sql))]


def test_agent_token_is_stored_as_a_digest(server: Server) -> None:
    agents: list[ArmaditoAgent] = [server.enrolled_agent() for _ in range(3)]
    again = agents[0].enroll(server.first_key)  # re-enrollment issues a new token
    assert again.status_code == 200

    stored = column(server, "SELECT token_hash FROM stations")
    assert len(stored) == 3
    tokens = [a.token for a in agents]
    assert len(set(tokens)) == 3
    for token in tokens:
        assert token
        assert len(token) >= 32
        assert token not in stored
        assert_not_stored(server, token)
    for digest in stored:
        assert HEX_DIGEST.match(digest), digest


def test_admin_tokens_are_stored_as_digests(server: Server) -> None:
    viewer = server.admin.as_role("vera", "viewer")
    tokens = [server.admin.token, viewer.token]

    stored = column(server, "SELECT token_hash FROM api_tokens")
    assert len(stored) == 2
    for token in tokens:
        assert token not in stored
        assert_not_stored(server, token)
    for digest in stored:
        assert HEX_DIGEST.match(digest), digest


@pytest.mark.production_password_hashes
def test_passwords_are_argon2_hashes(server: Server) -> None:
    first_password = "vera-password-123"  # what Admin.as_role sets
    server.admin.as_role("vera", "viewer")
    new_password = "an-entirely-new-secret"
    assert server.admin.patch("/users/vera", {"password": new_password}).status_code == 200

    with server.db.reading() as session:
        hashes: dict[str, str] = dict(
            session.execute(text("SELECT username, password_hash FROM users")).all()
        )
    assert set(hashes) == {"admin", "vera"}
    for username, digest in hashes.items():
        assert digest.startswith("$argon2id$"), (username, digest)
    hasher = PasswordHasher()
    assert hasher.verify(hashes["vera"], new_password)
    # Neither the old nor the new password is anywhere (the audit log notes the change only).
    dump = database_dump(server)
    assert first_password not in dump
    assert new_password not in dump


def test_admin_token_file_is_private(server: Server) -> None:
    path = server.settings.data_dir / "admin.token"
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert path.read_text().strip() == server.admin.token
