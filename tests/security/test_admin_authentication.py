"""The admin API authenticates every operation but the health check and the login.

No token, a wrong one, a logged-out, expired or otherwise revoked one gets 401 with a JSON
body; failed logins are audited; a disabled account or one whose role or password changed
loses its sessions at once.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from sqlalchemy import update

from garrison.common.tokens import token_hash
from garrison.server.store.base import utcnow
from garrison.server.users.models import ApiToken
from tests.conftest import Server
from tests.security.checks import audit_actions
from tests.support import Admin, ArmaditoAgent, assert_json_error

PUBLIC = {("get", "/admin/v1/health"), ("post", "/admin/v1/auth/login")}
METHODS = ("get", "post", "put", "patch", "delete")


def assert_401(response: Any) -> None:
    assert_json_error(response, 401, "not_authenticated")
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")


def operations(server: Server) -> list[tuple[str, str]]:
    response = server.client.get("/admin/v1/openapi.json", headers=server.admin.headers)
    assert response.status_code == 200, response.text
    doc = response.json()
    found = [
        (method, path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    ]
    return sorted(found)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_openapi_lists_the_admin_api(server: Server) -> None:
    """Guards the next test against passing on an empty or foreign document."""
    ops = operations(server)
    assert all(path.startswith("/admin/v1/") for _, path in ops), ops
    for needed in [
        ("get", "/admin/v1/health"),
        ("post", "/admin/v1/auth/login"),
        ("post", "/admin/v1/enrollment-keys"),
        ("get", "/admin/v1/stations"),
        ("post", "/admin/v1/jobs"),
        ("get", "/admin/v1/jobs"),
        ("get", "/admin/v1/alerts"),
        ("post", "/admin/v1/users"),
        ("patch", "/admin/v1/settings"),
    ]:
        assert needed in ops
    assert len(ops) >= 25


@pytest.mark.parametrize(
    ("label", "headers"),
    [
        ("no token", {}),
        ("wrong token", {"Authorization": "Bearer gat_" + "A" * 43}),
        ("empty bearer", {"Authorization": "Bearer "}),
        ("basic scheme", {"Authorization": "Basic YWRtaW46YWRtaW4="}),
        ("token without scheme", {"Authorization": "gat_" + "A" * 43}),
    ],
)
def test_every_operation_needs_a_token(server: Server, label: str, headers: dict[str, str]) -> None:
    checked = 0
    for method, path in operations(server):
        if (method, path) in PUBLIC:
            continue
        url = concrete(path)
        bodies: list[dict[str, Any]] = [{}]
        if method in ("post", "put", "patch"):
            # Neither a valid-looking nor a broken body gets past the authentication.
            bodies += [{"json": {}}, {"content": b"{not json"}]
        for body in bodies:
            response = server.client.request(method.upper(), url, headers=headers, **body)
            assert response.status_code == 401, (label, method, path, body, response.text)
            assert_401(response)
        checked += 1
    assert checked >= 25


def test_public_operations_answer_without_a_token(server: Server) -> None:
    health = server.client.get("/admin/v1/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    # Login is public by nature: it answers a bad password, not "token required".
    login = server.client.post(
        "/admin/v1/auth/login", json={"username": "admin", "password": "not-the-password"}
    )
    assert_json_error(login, 401)


def test_logged_out_token_is_refused(server: Server) -> None:
    operator = server.admin.as_role("olivia", "operator")
    assert operator.get("/auth/me").status_code == 200

    assert operator.post("/auth/logout").status_code == 204

    assert_401(operator.get("/auth/me"))
    assert_401(operator.get("/stations"))
    assert_401(operator.post("/groups", {"name": "after-logout"}))
    assert server.admin.get("/groups").json() == []
    # Logging out one session leaves the others alone.
    assert server.admin.get("/auth/me").status_code == 200


def test_expired_token_is_refused(server: Server) -> None:
    viewer = server.admin.as_role("vera", "viewer")
    with server.db.transaction() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == token_hash(viewer.token))
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )
    assert_401(viewer.get("/stations"))


def test_agent_token_is_not_an_admin_token(server: Server, agent_a: ArmaditoAgent) -> None:
    assert agent_a.token
    as_admin = Admin(server.client, agent_a.token)
    assert_401(as_admin.get("/stations"))
    assert_401(as_admin.post("/enrollment-keys", {"uses": 1, "expires_in": 3600}))


def test_login_with_a_wrong_password_is_refused_and_audited(server: Server) -> None:
    server.admin.as_role("walter", "operator")
    attempts = [("walter", "wrong-password-1"), ("nobody-here", "wrong-password-2")]
    bodies = []
    for username, password in attempts:
        response = server.client.post(
            "/admin/v1/auth/login", json={"username": username, "password": password}
        )
        body = assert_json_error(response, 401)
        assert "token" not in body
        bodies.append(body)
    # The answer does not tell a wrong password from an unknown user.
    assert bodies[0]["message"] == bodies[1]["message"]

    failed = audit_actions(server, action="auth.login_failed")
    assert sorted(e["actor"] for e in failed) == ["nobody-here", "walter"]
    # The attempted password is not written to the audit log.
    dumped = json.dumps(audit_actions(server))
    for _, password in attempts:
        assert password not in dumped


def test_disabled_user_loses_access(server: Server) -> None:
    operator = server.admin.as_role("dora", "operator")
    assert operator.get("/stations").status_code == 200

    patched = server.admin.patch("/users/dora", {"disabled": True})
    assert patched.status_code == 200, patched.text

    assert_401(operator.get("/stations"))
    assert_401(operator.post("/groups", {"name": "by-disabled"}))
    assert server.admin.get("/groups").json() == []
    login = server.client.post(
        "/admin/v1/auth/login", json={"username": "dora", "password": "dora-password-123"}
    )
    assert_json_error(login, 401)


@pytest.mark.parametrize(
    "change", [{"role": "viewer"}, {"password": "a-brand-new-password"}], ids=["role", "password"]
)
def test_changed_role_or_password_ends_sessions(server: Server, change: dict[str, str]) -> None:
    """Whoever holds a login session of the old role (or knew the old password) is out."""
    operator = server.admin.as_role("otto", "operator")
    assert operator.post("/groups", {"name": "before"}).status_code == 201

    assert server.admin.patch("/users/otto", change).status_code == 200

    assert_401(operator.post("/groups", {"name": "after"}))
    assert [g["name"] for g in server.admin.get("/groups").json()] == ["before"]


def test_deleted_user_loses_access(server: Server) -> None:
    operator = server.admin.as_role("dave", "operator")
    assert operator.get("/stations").status_code == 200

    assert server.admin.delete("/users/dave").status_code == 204

    assert_401(operator.get("/stations"))
    assert_401(operator.post("/groups", {"name": "by-deleted"}))
    assert server.admin.get("/groups").json() == []
