"""The console's login, session cookie, CSRF, roles and security headers, in process on
both backends (the browser tests in test_browser.py drive the same through Chromium)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from garrison.server.audit.models import AuditEntry
from garrison.server.stations.models import Station
from garrison.server.users.models import ConsoleSession
from tests.conftest import Server, ServerFactory
from tests.console.support import csrf_of, login, login_csrf, make_user


def _station(server: Server, hostname: str) -> int:
    """An enrolled (Armadito wire) station, named as a Garrison agent names itself."""
    agent = server.enrolled_agent()
    with server.db.transaction() as session:
        session.execute(
            update(Station).where(Station.id == agent.agent_id).values(hostname=hostname)
        )
    return agent.agent_id


def test_home_redirects_to_a_login_form_with_the_contract_inputs(server: Server) -> None:
    home = server.client.get("/", follow_redirects=True)
    assert home.status_code == 200
    assert 'name="username"' in home.text
    assert 'name="password"' in home.text
    csp = home.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "<script>" not in home.text  # every script is a file


def test_login_sets_a_strict_httponly_cookie_and_lists_stations(server: Server) -> None:
    _station(server, "console-host-1")
    password = make_user(server.admin, "alice", "admin")
    done = login(server.client, "alice", password)
    assert done.status_code == 303
    cookie = done.headers["set-cookie"]
    assert "garrison_console=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP here; under HTTPS it is set
    page = server.client.get("/stations")
    assert page.status_code == 200
    assert "console-host-1" in page.text
    with server.db.reading() as session:
        actions = list(session.scalars(select(AuditEntry.action)))
    assert "auth.console_login" in actions


def test_wrong_password_is_refused_audited_and_limited(server_factory: ServerFactory) -> None:
    server = server_factory(auth_address_failures=2)
    make_user(server.admin, "bob", "viewer")
    first = login(server.client, "bob", "not the password")
    assert first.status_code == 401
    assert "wrong username or password" in first.text
    login(server.client, "bob", "not the password")
    third = login(server.client, "bob", "bob-password-123")
    assert third.status_code == 429
    assert "too many failed logins" in third.text
    assert "retry-after" in third.headers
    with server.db.reading() as session:
        actions = list(session.scalars(select(AuditEntry.action)))
    assert actions.count("auth.login_failed") == 2
    assert "auth.login_throttled" in actions


def test_a_change_without_the_csrf_token_is_refused(server: Server) -> None:
    station_id = _station(server, "csrf-host")
    password = make_user(server.admin, "carol", "operator")
    login(server.client, "carol", password)
    refused = server.client.post(f"/stations/{station_id}/jobs", data={"action": "scan"})
    assert refused.status_code == 403
    assert "CSRF token" in refused.text
    wrong = server.client.post(
        f"/stations/{station_id}/jobs", data={"action": "scan", "csrf_token": "forged"}
    )
    assert wrong.status_code == 403
    assert server.admin.get("/jobs").json()["total"] == 0
    page = server.client.get(f"/stations/{station_id}")
    done = server.client.post(
        f"/stations/{station_id}/jobs",
        data={"action": "scan", "path": "/tmp", "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert server.admin.get("/jobs").json()["total"] == 1


def test_a_viewer_sees_no_write_control_and_a_forced_write_is_refused(server: Server) -> None:
    station_id = _station(server, "viewer-host")
    password = make_user(server.admin, "dave", "viewer")
    login(server.client, "dave", password)
    page = server.client.get(f"/stations/{station_id}")
    assert page.status_code == 200
    assert 'value="scan"' not in page.text
    forced = server.client.post(
        f"/stations/{station_id}/jobs", data={"action": "scan", "csrf_token": csrf_of(page.text)}
    )
    assert forced.status_code == 403
    assert "needs the operator role" in forced.text
    assert server.admin.get("/jobs").json()["total"] == 0


def test_logout_idle_expiry_and_a_tampered_cookie_end_at_the_login_page(server: Server) -> None:
    password = make_user(server.admin, "erin", "viewer")
    login(server.client, "erin", password)
    page = server.client.get("/stations")
    assert page.status_code == 200
    # Idle: the session was last used longer ago than console_idle_seconds.
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=server.settings.console_idle_seconds + 5)
    with server.db.transaction() as session:
        session.execute(update(ConsoleSession).values(last_seen_at=old))
    expired = server.client.get("/stations", follow_redirects=True)
    assert "your session expired" in expired.text
    assert 'name="password"' in expired.text
    login(server.client, "erin", password)
    page = server.client.get("/stations")
    out = server.client.post(
        "/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=True
    )
    assert "You are logged out" in out.text
    with server.db.reading() as session:
        assert session.scalar(select(ConsoleSession.id)) is None
    server.client.cookies.set("garrison_console", "gcs_tampered")
    tampered = server.client.get("/stations", follow_redirects=True)
    assert "your session has ended" in tampered.text


def test_the_cookie_is_secure_under_https(server: Server) -> None:
    password = make_user(server.admin, "frank", "viewer")
    form = server.client.get("https://testserver/login")
    done = server.client.post(
        "https://testserver/login",
        data={"username": "frank", "password": password, "login_csrf": login_csrf(form.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert "Secure" in done.headers["set-cookie"]
    assert server.client.get("https://testserver/stations").status_code == 200


def test_a_role_change_ends_the_users_console_sessions(server: Server) -> None:
    password = make_user(server.admin, "gina", "operator")
    login(server.client, "gina", password)
    assert server.client.get("/jobs/new").status_code == 200
    assert server.admin.patch("/users/gina", {"role": "viewer"}).status_code == 200
    after = server.client.get("/jobs/new", follow_redirects=True)
    assert "your session has ended" in after.text
