"""Password guessing is slowed down: failed logins are limited per client address (on each
node) and per account (in the database, so on every node), refused with 429, a
``Retry-After`` header and the usual JSON error body, and audited without flooding the
audit log.  A lock always expires, never touches bearer tokens, and the real user's success
(or a new password from an administrator) clears it.  Refused enrollment keys are limited
per address the same way."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from sqlalchemy import select, update

from garrison.server.store.base import utcnow
from tests.conftest import Server, ServerFactory
from tests.events.helpers import events
from tests.security.checks import audit_actions
from tests.support import Admin, assert_json_error

PASSWORD = "lena-password-123"


def login(server: Server, username: str, password: str) -> httpx.Response:
    response: httpx.Response = server.client.post(
        "/admin/v1/auth/login", json={"username": username, "password": password}
    )
    return response


def assert_429(response: httpx.Response) -> dict[str, Any]:
    body = assert_json_error(response, 429, "rate_limited")
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert body["retry_after"] == retry_after
    return body


def make_user(server: Server, username: str = "lena") -> None:
    created = server.admin.post(
        "/users", {"username": username, "password": PASSWORD, "role": "operator"}
    )
    assert created.status_code == 201, created.text


def test_failed_logins_from_one_address_are_limited(server_factory: ServerFactory) -> None:
    server = server_factory(auth_address_failures=3, login_lockout_after=100)
    make_user(server)
    for i in range(3):  # different accounts: the limit is the address's
        assert_json_error(login(server, f"guess-{i}", "wrong-password"), 401)

    refused = login(server, "lena", PASSWORD)  # even the right password is not checked
    body = assert_429(refused)
    assert "address" in body["message"]
    assert int(refused.headers["retry-after"]) <= 60
    for _ in range(5):
        assert_429(login(server, "lena", PASSWORD))

    # Six refusals, one audit entry (the next one, an interval later, counts the rest).
    throttled = audit_actions(server, action="auth.login_throttled")
    assert len(throttled) == 1, throttled
    assert throttled[0]["details"]["limit"] == "address"
    assert throttled[0]["address"] == "testclient"
    assert len(audit_actions(server, action="auth.login_failed")) == 3


def test_an_account_locks_on_every_node(server_factory: ServerFactory) -> None:
    """Two nodes on one database: failures on one lock the account on the other."""
    settings: dict[str, Any] = {"auth_address_failures": 1000, "login_lockout_after": 3}
    node_a = server_factory(**settings)
    node_b = server_factory(**settings)
    make_user(node_a)
    for _ in range(3):
        assert_json_error(login(node_a, "lena", "wrong-password"), 401)

    refused = login(node_b, "lena", PASSWORD)
    body = assert_429(refused)
    assert "account" in body["message"]
    assert 25 <= int(refused.headers["retry-after"]) <= 30
    assert_429(login(node_a, "lena", PASSWORD))

    locked = audit_actions(node_a, action="auth.login_locked")
    assert [e["target"] for e in locked] == ["lena"]
    assert locked[0]["details"]["failures"] == 3
    # Refusals while locked are aggregated too: one entry per node at most.
    assert 1 <= len(audit_actions(node_a, action="auth.login_throttled")) <= 2
    # Their Audit_Event says the attempt failed, like a wrong password's.
    results = {
        e["data"]["action"]: e["data"]["result"]
        for e in events(node_a, type="audit")
        if e["data"]["action"].startswith("auth.login_")
    }
    assert results == {
        "auth.login_failed": "Failed",
        "auth.login_locked": "Failed",
        "auth.login_throttled": "Failed",
    }


def expire_lock(server: Server, username: str) -> None:
    from garrison.server.users.models import LoginLockout  # new: imported here, so that the
    # other tests of this module run (and fail) on code from before the lockout

    with server.db.transaction() as session:
        session.execute(
            update(LoginLockout)
            .where(LoginLockout.username == username)
            .values(locked_until=utcnow() - dt.timedelta(seconds=1))
        )


def test_the_lock_expires_doubles_and_clears_on_success(server_factory: ServerFactory) -> None:
    server = server_factory(
        auth_address_failures=1000, login_lockout_after=2, login_lockout_seconds=30
    )
    make_user(server)
    for _ in range(2):
        assert_json_error(login(server, "lena", "wrong-password"), 401)
    assert_429(login(server, "lena", PASSWORD))

    # Expired: one more guess, and the next lock is twice as long.
    expire_lock(server, "lena")
    assert_json_error(login(server, "lena", "wrong-password"), 401)
    refused = login(server, "lena", PASSWORD)
    assert_429(refused)
    assert 55 <= int(refused.headers["retry-after"]) <= 60

    # Expired again: the real user logs in, and the count starts over.
    expire_lock(server, "lena")
    assert login(server, "lena", PASSWORD).status_code == 200
    from garrison.server.users.models import LoginLockout

    with server.db.reading() as session:
        assert session.scalar(select(LoginLockout).where(LoginLockout.username == "lena")) is None
    assert_json_error(login(server, "lena", "wrong-password"), 401)
    assert login(server, "lena", PASSWORD).status_code == 200


def test_a_lock_never_blocks_tokens_and_an_admin_can_lift_it(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(auth_address_failures=1000, login_lockout_after=2)
    make_user(server)
    lena = server.admin.as_role("lena2", "operator")
    for username in ("admin", "lena", "lena2"):
        for _ in range(2):
            assert_json_error(login(server, username, "wrong-password"), 401)
        assert_429(login(server, username, "whatever-password"))

    # The admin's token (admin.token) and lena2's open session still work.
    assert server.admin.get("/auth/me").status_code == 200
    assert lena.get("/auth/me").status_code == 200
    # A new password set by an administrator lifts the lock.
    assert server.admin.patch("/users/lena", {"password": "another-password-1"}).status_code == 200
    assert login(server, "lena", "another-password-1").status_code == 200


def test_unknown_accounts_lock_alike(server_factory: ServerFactory) -> None:
    """A lock does not tell which accounts exist."""
    server = server_factory(auth_address_failures=1000, login_lockout_after=2)
    make_user(server)
    answers = []
    for username in ("lena", "no-such-user"):
        for _ in range(2):
            assert_json_error(login(server, username, "wrong-password"), 401)
        answers.append(assert_429(login(server, username, "wrong-password"))["message"])
    assert answers[0] == answers[1]


def test_the_lock_is_capped() -> None:
    from garrison.server.users.lockout import Policy

    policy = Policy(after=5, base=30, maximum=900)
    assert [policy.lock_seconds(n) for n in (1, 4, 5, 6, 7)] == [0, 0, 30, 60, 120]
    assert policy.lock_seconds(10) == 900
    assert policy.lock_seconds(10**9) == 900


def test_refused_enrollment_keys_are_limited_per_address(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(auth_address_failures=2)
    for _ in range(2):
        refused = server.agent().enroll("not-a-key")
        assert refused.status_code == 403, refused.text

    throttled = server.agent().enroll(server.first_key)  # the key is not even checked
    assert_429(throttled)
    assert "enrollment" in throttled.json()["message"]
    assert server.admin.get("/stations").json()["items"] == []


def test_successful_logins_are_not_limited(server_factory: ServerFactory) -> None:
    server = server_factory(auth_address_failures=2, login_lockout_after=2)
    make_user(server)
    for _ in range(5):
        assert login(server, "lena", PASSWORD).status_code == 200
    assert Admin(server.client, login(server, "lena", PASSWORD).json()["token"]).get(
        "/auth/me"
    ).json() == {"username": "lena", "role": "operator"}
