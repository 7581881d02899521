"""Helpers of the console tests: log a TestClient (or httpx client) in through the form."""

from __future__ import annotations

import re

import httpx
from starlette.testclient import TestClient

from tests.support import Admin

PASSWORD_SUFFIX = "-password-123"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_LOGIN_CSRF = re.compile(r'name="login_csrf" value="([^"]+)"')


def make_user(admin: Admin, username: str, role: str) -> str:
    password = f"{username}{PASSWORD_SUFFIX}"
    created = admin.post("/users", {"username": username, "password": password, "role": role})
    assert created.status_code == 201, created.text
    return password


def login(client: TestClient | httpx.Client, username: str, password: str) -> httpx.Response:
    """Fetch the login form (its CSRF cookie and field) and post it; the answer unfollowed."""
    form = client.get("/login")
    assert form.status_code == 200, form.text
    return client.post(
        "/login",
        data={"username": username, "password": password, "login_csrf": login_csrf(form.text)},
        follow_redirects=False,
    )


def login_csrf(html: str) -> str:
    match = _LOGIN_CSRF.search(html)
    assert match is not None, "no login_csrf field on the login page"
    return match.group(1)


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)
