"""The server's log (docs/operations.md): a JSON line on stdout per request and per event of
note, human-readable lines on a terminal, GARRISON_LOG_LEVEL obeyed, no secret printed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import ValidationError

from garrison.server import logs
from garrison.server.settings import Settings
from garrison.server.store import migrate
from tests.live import start_server
from tests.support import ArmaditoAgent


def json_lines(output: str) -> list[dict[str, Any]]:
    """The JSON objects among the lines (the first-start banner is plain text)."""
    found = []
    for line in output.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_a_real_server_logs_each_request_and_the_events_of_note(tmp_path: Path) -> None:
    live = start_server(tmp_path / "data")
    try:
        admin = {"Authorization": f"Bearer {live.token}"}
        key = httpx.get(f"{live.url}/admin/v1/enrollment-keys", headers=admin).json()[0]["key"]
        with httpx.Client(base_url=live.url) as client:
            agent = ArmaditoAgent(client)
            assert agent.enroll(key).status_code == 200
            assert agent.token
            assert agent.getjobs().status_code == 200
            stranger = ArmaditoAgent(client)
            assert stranger.enroll("AAAAA-AAAAA-AAAAA-AAAAA-AAAAA").status_code == 403
            bad = client.get("/api/jobs?agent_id=1", headers={"Authorization": "Bearer gst_x"})
            assert bad.status_code == 401
            assert client.get(f"/admin/v1/stations?key={key}", headers=admin).status_code == 200
    finally:
        assert live.stop() == 0
    lines = json_lines(live.output)
    requests = [line for line in lines if line["event"] == "request"]
    for line in requests:
        assert {"method", "path", "status", "ms", "level", "timestamp"} <= line.keys(), line
        assert isinstance(line["ms"], float | int)
    checkin = [r for r in requests if r["path"] == "/api/jobs" and r["status"] == 200]
    assert checkin == [
        {**checkin[0], "method": "GET", "station_id": agent.agent_id, "level": "info"}
    ], requests
    assert {(r["method"], r["path"], r["status"]) for r in requests} >= {
        ("POST", "/api/agents", 200),
        ("POST", "/api/agents", 403),
        ("GET", "/api/jobs", 401),
        ("GET", "/admin/v1/enrollment-keys", 200),
        ("GET", "/admin/v1/stations", 200),  # the path, never the query (a key)
    }
    notes = {line["event"]: line for line in lines if line["event"] != "request"}
    assert notes["station enrolled"]["station_id"] == agent.agent_id
    refusals = [line["reason"] for line in lines if line["event"] == "station authorization failed"]
    assert refusals == ["unknown enrollment key", "invalid agent token; enroll again"]
    assert notes["authentication refused"]["path"] == "/api/jobs"
    # Secrets: no log line holds the agent's token, the admin token or the enrollment key
    # (the first-start banner shows the key, on purpose, once).
    logged = "\n".join(line for line in live.output.splitlines() if line.startswith("{"))
    for secret in (agent.token, live.token, key):
        assert secret not in logged
    # Alembic's start-up chatter is gone; the migrations it ran are still said.
    assert "Context impl" not in live.output
    assert any(line.get("logger") == "alembic.runtime.migration" for line in lines)


def test_the_level_comes_from_settings() -> None:
    assert Settings(log_level="WARNING").log_level == "warning"
    with pytest.raises(ValidationError, match="unknown log level"):
        Settings(log_level="loud")
    assert logs.RequestLog("info").enabled
    assert logs.RequestLog("debug").enabled
    assert not logs.RequestLog("warning").enabled


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restored_logging() -> Iterator[None]:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_human_lines_on_a_terminal_json_otherwise(terminal: bool) -> None:
    out = Terminal() if terminal else io.StringIO()
    logs.configure("info", stream=out)
    structlog.get_logger("t").info("station enrolled", station_id=7)
    logging.getLogger("alembic.runtime.migration").info("Running upgrade 1 -> 2")
    logging.getLogger("t").debug("below the level")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    if terminal:
        assert not any(line.startswith("{") for line in lines), lines
        assert "station enrolled" in lines[0]
        assert "station_id" in lines[0]
    else:
        first, second = (json.loads(line) for line in lines)
        assert (first["event"], first["station_id"], first["level"]) == (
            "station enrolled",
            7,
            "info",
        )
        assert (second["event"], second["logger"]) == (
            "Running upgrade 1 -> 2",
            "alembic.runtime.migration",
        )


def test_alembic_says_what_it_migrates_and_nothing_at_a_plain_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    caplog.set_level(logging.INFO)
    migrate.upgrade(url)
    first = [r.getMessage() for r in caplog.records if r.name.startswith("alembic")]
    assert any(m.startswith("Running upgrade") for m in first), first
    assert not any(m.startswith("Context impl") for m in first), first
    caplog.clear()
    migrate.upgrade(url)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []
