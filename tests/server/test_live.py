"""The real server process: first start, restart, and graceful shutdown."""

from __future__ import annotations

import signal
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.live import start_server


def test_first_start_prints_credentials_and_writes_token(tmp_path: Path) -> None:
    live = start_server(tmp_path / "data")
    try:
        token_file = tmp_path / "data" / "admin.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        me = httpx.get(
            f"{live.url}/admin/v1/auth/me", headers={"Authorization": f"Bearer {live.token}"}
        )
        assert me.json() == {"username": "admin", "role": "admin"}
    finally:
        assert live.stop() == 0
    assert "admin password (shown once)" in live.output
    assert "enrollment key" in live.output
    # A second start on the same data dir creates nothing new and prints no password.
    again = start_server(tmp_path / "data")
    try:
        keys = httpx.get(
            f"{again.url}/admin/v1/enrollment-keys",
            headers={"Authorization": f"Bearer {again.token}"},
        ).json()
        assert len(keys) == 1
    finally:
        again.stop()
    assert "shown once" not in again.output


def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    live = start_server(tmp_path / "data")
    results: list[int] = []
    body = b"x" * (1 << 20)

    def slow_upload() -> None:
        def chunks() -> Iterator[bytes]:
            for i in range(0, len(body), 65536):
                time.sleep(0.05)
                yield body[i : i + 65536]

        try:
            r = httpx.post(
                f"{live.url}/api/states",
                content=chunks(),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            results.append(r.status_code)
        except httpx.HTTPError:
            results.append(-1)

    thread = threading.Thread(target=slow_upload)
    thread.start()
    time.sleep(0.3)  # the request is in flight
    live.process.send_signal(signal.SIGTERM)
    thread.join(timeout=30)
    assert live.stop() == 0
    # The in-flight request got a real answer (401: no credentials), not a reset connection.
    assert results == [401]
