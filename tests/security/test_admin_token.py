"""``admin.token``, the long-lived API token of the first start, is not lost by accident: a
PATCH repeating the admin's current role (or state) changes nothing, and logging out with
it is refused instead of revoking it.  When it is revoked for real (a role change) or lost,
``garrison db admin-token`` on the server's host writes a new one."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from garrison.cli.main import app
from tests.conftest import Server
from tests.security.checks import audit_actions
from tests.support import Admin, assert_json_error


@pytest.mark.parametrize(
    "patch",
    [{"role": "admin"}, {"disabled": False}, {"role": "admin", "disabled": False}],
    ids=["same-role", "still-enabled", "both"],
)
def test_a_no_op_patch_keeps_admin_token(server: Server, patch: dict[str, object]) -> None:
    operator = server.admin.as_role("opal", "operator")
    before = len(audit_actions(server, action="user.update"))

    assert server.admin.patch("/users/admin", patch).status_code == 200
    assert server.admin.patch("/users/opal", {"role": "operator"}).status_code == 200

    assert server.admin.get("/auth/me").status_code == 200
    assert operator.get("/auth/me").status_code == 200
    assert len(audit_actions(server, action="user.update")) == before  # nothing changed


def test_a_real_role_change_still_ends_sessions(server: Server) -> None:
    operator = server.admin.as_role("opal", "operator")
    assert server.admin.patch("/users/opal", {"role": "viewer"}).status_code == 200
    assert_json_error(operator.get("/auth/me"), 401)


def test_logout_with_admin_token_is_refused_and_keeps_it(server: Server) -> None:
    refused = server.admin.post("/auth/logout")
    body = assert_json_error(refused, 409, "conflict")
    assert "admin.token" in body["message"]
    assert server.admin.get("/auth/me").status_code == 200
    # A login session still logs out.
    session = server.admin.as_role("olga", "admin")
    assert session.post("/auth/logout").status_code == 204
    assert_json_error(session.get("/auth/me"), 401)


def admin_token_command(server: Server, *args: str) -> tuple[int, str]:
    env = {
        "GARRISON_DATABASE_URL": server.settings.resolved_database_url(),
        "GARRISON_DATA_DIR": str(server.settings.data_dir),
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(app, ["db", "admin-token", *args], env=env)
    return result.exit_code, result.output + (result.stderr or "")


def test_db_admin_token_replaces_a_revoked_admin_token(server: Server) -> None:
    """The admin was demoted and promoted back (by another admin): admin.token is gone for
    good, and the operator on the host gets a new one."""
    other = server.admin.as_role("root2", "admin")
    assert other.patch("/users/admin", {"role": "viewer"}).status_code == 200
    assert other.patch("/users/admin", {"role": "admin"}).status_code == 200
    old = server.admin
    assert_json_error(old.get("/auth/me"), 401)

    code, output = admin_token_command(server)
    assert code == 0, output
    assert "admin.token" in output
    path = server.settings.data_dir / "admin.token"
    assert path.stat().st_mode & 0o777 == 0o600
    new = Admin(server.client, path.read_text().strip())
    assert new.token != old.token
    assert new.get("/auth/me").json() == {"username": "admin", "role": "admin"}
    server.admin = new
    assert [e["target"] for e in audit_actions(server, action="user.admin_token")] == ["admin"]

    # Run again (a leaked token is rotated): the previous one stops working.
    code, output = admin_token_command(server)
    assert code == 0, output
    assert_json_error(new.get("/auth/me"), 401)
    assert Admin(server.client, path.read_text().strip()).get("/auth/me").status_code == 200


def test_db_admin_token_needs_an_active_admin(server: Server) -> None:
    server.admin.as_role("vic", "viewer")
    for user, expected in (("vic", "not an active admin"), ("nobody", "no user")):
        code, output = admin_token_command(server, "--user", user)
        assert code == 1, output
        assert expected in output
        assert "Traceback" not in output
