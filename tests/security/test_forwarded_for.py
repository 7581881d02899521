"""``X-Forwarded-For`` is believed only from the proxies listed in GARRISON_TRUSTED_PROXIES
(none by default), and the address it gives is the one every part of the server uses: the
audit log, a station's address, the per-address login limit.

The real-process tests matter: before, uvicorn itself believed the header from any peer on
127.0.0.1, so on a host with a local proxy (or any local user) a client could name itself."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live import LiveServer, start_server
from tests.support import ArmaditoAgent

# The real servers here use SQLite: the client address does not depend on the database.


def failed_login(url: str, forwarded: str | None, username: str = "nobody") -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    return httpx.post(
        f"{url}/admin/v1/auth/login",
        json={"username": username, "password": "wrong-password"},
        headers=headers,
    )


def audit_addresses(live: LiveServer, action: str) -> list[str]:
    response = httpx.get(
        f"{live.url}/admin/v1/audit",
        params={"action": action},
        headers={"Authorization": f"Bearer {live.token}"},
    )
    assert response.status_code == 200, response.text
    return [entry["address"] for entry in response.json()]


@pytest.fixture
def live_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[LiveServer] = []

    def make(name: str, **env: str) -> LiveServer:
        live = start_server(tmp_path / name / "data", extra_env=env)
        started.append(live)
        return live

    yield make
    for live in started:
        live.stop()


def test_forwarded_for_is_ignored_by_default(live_factory: Any) -> None:
    live = live_factory("default")
    assert failed_login(live.url, "203.0.113.9").status_code == 401
    assert audit_addresses(live, "auth.login_failed") == ["127.0.0.1"]


def test_a_forged_header_cannot_dodge_the_address_limit(live_factory: Any) -> None:
    live = live_factory("limit", GARRISON_AUTH_ADDRESS_FAILURES="2")
    for i in range(2):
        assert failed_login(live.url, f"203.0.113.{i}", f"user{i}").status_code == 401
    # A new forged address each time changes nothing: the peer is the client.
    assert failed_login(live.url, "203.0.113.77", "user9").status_code == 429


def test_a_trusted_proxy_gives_the_client_address_everywhere(live_factory: Any) -> None:
    live = live_factory(
        "proxied",
        GARRISON_TRUSTED_PROXIES="10.9.9.9, 127.0.0.0/8",
        GARRISON_AUTH_ADDRESS_FAILURES="2",
    )
    # The rightmost address that is not a trusted proxy is the client.
    forwarded = "198.51.100.1, 203.0.113.9, 10.9.9.9"
    assert failed_login(live.url, forwarded).status_code == 401
    assert audit_addresses(live, "auth.login_failed") == ["203.0.113.9"]

    # A station's address, from its enrollment through the proxy.
    key = httpx.post(
        f"{live.url}/admin/v1/enrollment-keys",
        json={"uses": 1, "expires_in": 3600},
        headers={"Authorization": f"Bearer {live.token}"},
    ).json()["key"]
    with httpx.Client(base_url=live.url, headers={"X-Forwarded-For": "192.0.2.44"}) as client:
        enrolled = ArmaditoAgent(client).enroll(key)
    assert enrolled.status_code == 200, enrolled.text
    stations = httpx.get(
        f"{live.url}/admin/v1/stations", headers={"Authorization": f"Bearer {live.token}"}
    ).json()["items"]
    assert [s["address"] for s in stations] == ["192.0.2.44"]

    # The address limit counts per real client: another client behind the proxy is free.
    assert failed_login(live.url, "203.0.113.9").status_code == 401
    assert failed_login(live.url, "203.0.113.9").status_code == 429
    assert failed_login(live.url, "203.0.113.10").status_code == 401


def scope(peer: str, *forwarded: str) -> dict[str, Any]:
    return {
        "type": "http",
        "client": (peer, 1234),
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("192.0.2.1", ["198.51.100.7"], "192.0.2.1"),  # an untrusted peer: header ignored
        ("10.0.0.1", ["198.51.100.7"], "198.51.100.7"),
        ("10.0.0.1", ["198.51.100.7, 10.0.0.2"], "198.51.100.7"),  # two proxies
        ("10.0.0.1", ["1.1.1.1", "198.51.100.7"], "198.51.100.7"),  # two headers: the last
        ("10.0.0.1", ["garbage, 198.51.100.7"], "198.51.100.7"),
        ("10.0.0.1", ["198.51.100.7, not-an-ip"], "10.0.0.1"),  # garbled: the proxy
        ("10.0.0.1", [], "10.0.0.1"),
        ("10.0.0.1", ["10.0.0.3"], "10.0.0.3"),  # all trusted: the leftmost
        ("::ffff:10.0.0.1", ["198.51.100.7"], "198.51.100.7"),  # IPv4-mapped peer
        ("2001:db8::1", ["2001:db8:1::5, 2a00::1"], "2a00::1"),
        ("testclient", ["198.51.100.7"], "testclient"),
    ],
)
def test_resolve_client(peer: str, forwarded: list[str], client: str) -> None:
    from garrison.server.middleware import resolve_client  # here: the module's live tests
    # then run (and fail) on code from before it

    resolved = resolve_client(scope(peer, *forwarded), PROXIES)
    assert resolved["client"][0] == client


def test_no_proxies_no_change() -> None:
    from garrison.server.middleware import resolve_client

    original = scope("10.0.0.1", "198.51.100.7")
    assert resolve_client(original, ()) is original
