"""PostgreSQL lost under load (a TCP proxy between the server and the database, cut and
restored): requests fail at once with 503 database_unavailable and Retry-After, and the
node serves again once the database is back, without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.live import LiveServer, start_server
from tests.server.tcp_proxy import TcpProxy
from tests.server.test_workers import agent_headers, enrolled
from tests.support import wait_for


@pytest.fixture
def proxied(tmp_path: Path, database_url: str) -> Iterator[tuple[LiveServer, TcpProxy]]:
    if not database_url.startswith("postgresql"):
        pytest.skip("the database is a separate server on PostgreSQL only")
    url = make_url(database_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    live = start_server(tmp_path / "data", through, {"GARRISON_WORKERS": "2"}, wait=60)
    try:
        yield live, proxy
    finally:
        live.stop()
        proxy.close()


def test_requests_fail_cleanly_while_the_database_is_away_and_recover(
    proxied: tuple[LiveServer, TcpProxy],
) -> None:
    live, proxy = proxied
    agent = enrolled(live)
    headers = agent_headers(agent)

    def post(n: int) -> httpx.Response:
        batch = [
            {"id": f"o-{n}-{j}", "type": "component_started", "data": {"pid": j}} for j in range(5)
        ]
        return httpx.post(f"{live.url}/api/events", json=batch, headers=headers, timeout=30)

    assert post(0).status_code == 200
    proxy.cut()
    for n in range(1, 7):  # both workers, their pooled connections broken or new ones refused
        started = time.monotonic()
        answer = post(n)
        took = time.monotonic() - started
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "database_unavailable"
        assert int(answer.headers["retry-after"]) >= 1
        assert took < 8.0, took
    health = httpx.get(f"{live.url}/admin/v1/health", timeout=30)
    assert health.status_code == 503
    assert health.json()["code"] == "database_unavailable"
    proxy.restore()
    wait_for(
        lambda: post(100).status_code,
        lambda s: s == 200,
        timeout=30,
        what="serving again",
        every=0.5,
    )
    for n in range(101, 105):  # on every worker, not only the first that reconnected
        assert post(n).status_code == 200
    assert live.process.poll() is None
