"""The server's log (docs/operations.md): a JSON line on stdout per request and per event of
note, human-readable lines on a terminal, GARRISON_LOG_LEVEL obeyed, no secret printed."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import subprocess
import sys
import time
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
from tests.conftest import Server
from tests.live import LiveServer, start_server
from tests.support import ArmaditoAgent, wait_for

# How long a request line may take to reach stdout: the flush interval, with a wide margin
# for a loaded machine (the flusher thread must be scheduled).
LINE_DUE = 20 * logs.FLUSH_SECONDS + 5


def json_lines(output: str) -> list[dict[str, Any]]:
    """The JSON objects among the lines (the first-start banner is plain text)."""
    found = []
    for line in output.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def request_lines(live: LiveServer, path: str) -> list[dict[str, Any]]:
    """The request lines for ``path`` the running server has written so far."""
    return [
        line
        for line in json_lines(live.log_path.read_text())
        if line["event"] == "request" and line["path"] == path
    ]


def test_a_real_server_logs_each_request_and_the_events_of_note(tmp_path: Path) -> None:
    live = start_server(tmp_path / "data")
    try:
        admin = {"Authorization": f"Bearer {live.token}"}
        # Keys are listed without their text (stored hashed): make one.
        key = httpx.post(
            f"{live.url}/admin/v1/enrollment-keys", json={"uses": 5}, headers=admin
        ).json()["key"]
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
        # Request lines are buffered, then written by the flusher within its interval.
        wait_for(
            lambda: request_lines(live, "/admin/v1/stations"),
            timeout=LINE_DUE,
            what="the last request's line on stdout",
        )
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
        ("POST", "/admin/v1/enrollment-keys", 201),
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


def test_a_server_stopped_with_sigterm_has_written_every_request_line(tmp_path: Path) -> None:
    # A flush interval longer than the test: only the shutdown can write the lines.
    live = start_server(tmp_path / "data", extra_env={"GARRISON_LOG_FLUSH_SECONDS": "600"})
    checkins = 40
    try:
        admin = {"Authorization": f"Bearer {live.token}"}
        # Keys are listed without their text (stored hashed): make one.
        key = httpx.post(
            f"{live.url}/admin/v1/enrollment-keys", json={"uses": 5}, headers=admin
        ).json()["key"]
        with httpx.Client(base_url=live.url) as client:
            agent = ArmaditoAgent(client)
            assert agent.enroll(key).status_code == 200
            for _ in range(checkins):
                assert agent.getjobs().status_code == 200
        # Still buffered (nothing of note was logged after them to push them out).
        assert request_lines(live, "/api/jobs") == []
    finally:
        assert live.stop(signal.SIGTERM) == 0
    written = [line for line in json_lines(live.output) if line["event"] == "request"]
    jobs = [line for line in written if line["path"] == "/api/jobs"]
    assert len(jobs) == checkins, written
    assert {line["station_id"] for line in jobs} == {agent.agent_id}


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
    output = logs._output  # the process's, which the test replaces
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        logs.output().close()
        logs._output = output
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


@pytest.mark.usefixtures("restored_logging")
def test_the_request_line() -> None:
    out = io.StringIO()
    logs.configure("info", stream=out, human=False, flush_seconds=600)
    request_log = logs.RequestLog("info")
    before = time.time()
    request_log.write("GET", "/api/jobs", 200, time.perf_counter() - 0.0125, 42)
    request_log.write("POST", '/api/"odd"\u00e9', 401, time.perf_counter(), None)
    assert out.getvalue() == ""  # buffered
    logs.flush()
    raw = out.getvalue()
    assert raw.endswith("\n"), raw
    assert raw.count("\n") == 2, raw
    checkin, refused = (json.loads(line) for line in raw.splitlines())
    stamp = checkin.pop("timestamp")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp
    logged = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert int(before) - 1 <= logged <= time.time()
    assert checkin.pop("ms") >= 12.5
    assert checkin == {
        "level": "info",
        "event": "request",
        "method": "GET",
        "path": "/api/jobs",
        "status": 200,
        "station_id": 42,
    }
    assert refused["path"] == '/api/"odd"\u00e9'
    assert (refused["method"], refused["status"]) == ("POST", 401)
    assert "station_id" not in refused


def test_the_timestamp_is_utc_to_the_millisecond() -> None:
    request_log = logs.RequestLog("info")
    assert request_log.timestamp(1_700_000_000.0) == "2023-11-14T22:13:20.000Z"
    assert request_log.timestamp(1_700_000_000.9999) == "2023-11-14T22:13:20.999Z"
    # The cached second is replaced when the next one begins.
    assert request_log.timestamp(1_700_000_001.25) == "2023-11-14T22:13:21.250Z"
    assert request_log.timestamp(1_699_999_999.5) == "2023-11-14T22:13:19.500Z"


def test_a_line_of_note_comes_after_the_request_lines_before_it() -> None:
    out = io.StringIO()
    output = logs.Output(out, human=False, interval=600)
    try:
        output.buffered(b'{"event":"request"}\n')
        output.line('{"event":"station enrolled"}')
        assert out.getvalue() == '{"event":"request"}\n{"event":"station enrolled"}\n'
    finally:
        output.close()


def test_the_flusher_writes_within_the_interval_or_when_the_buffer_fills() -> None:
    interval = 0.05
    out = io.StringIO()
    timed = logs.Output(out, human=False, interval=interval)
    try:
        timed.buffered(b"one\n")
        wait_for(lambda: out.getvalue() == "one\n", timeout=200 * interval, what="timed flush")
    finally:
        timed.close()
    full = io.StringIO()
    sized = logs.Output(full, human=False, interval=600, limit=8)
    try:
        sized.buffered(b"1234\n")
        assert full.getvalue() == ""
        sized.buffered(b"5678\n")  # 10 bytes pending: over the limit
        wait_for(lambda: full.getvalue() == "1234\n5678\n", timeout=10, what="full flush")
    finally:
        sized.close()


def test_close_writes_what_is_pending_and_then_writes_at_once() -> None:
    out = io.StringIO()
    output = logs.Output(out, human=False, interval=600)
    output.buffered(b"pending\n")
    output.close()
    assert out.getvalue() == "pending\n"
    output.buffered(b"late\n")
    assert out.getvalue() == "pending\nlate\n"
    unbuffered = io.StringIO()
    at_once = logs.Output(unbuffered, human=False, interval=0)
    at_once.buffered(b"now\n")
    assert unbuffered.getvalue() == "now\n"


@pytest.mark.usefixtures("restored_logging")
def test_request_lines_are_human_on_a_terminal() -> None:
    out = Terminal()
    logs.configure("info", stream=out)
    logs.RequestLog("info").write("GET", "/api/jobs", 200, time.perf_counter(), 7)
    text = out.getvalue()  # at once: a person is watching
    assert text.count("\n") == 1, text
    assert not text.startswith("{"), text
    for part in ("request", "/api/jobs", "station_id"):
        assert part in text, text


@pytest.mark.usefixtures("restored_logging")
def test_the_app_writes_the_pending_request_lines_when_it_stops(server_factory: Any) -> None:
    out = io.StringIO()
    logs.configure_structlog("info", human=False, stream=out, cache=False, flush_seconds=600)
    server: Server = server_factory()
    assert server.client.get("/admin/v1/health").status_code == 200
    assert '"path":"/admin/v1/health"' not in out.getvalue()  # buffered
    server.client.__exit__(None, None, None)  # the lifespan's shutdown
    assert '"path":"/admin/v1/health"' in out.getvalue()


def test_a_process_that_exits_writes_the_pending_request_lines() -> None:
    script = (
        "import time\n"
        "from garrison.server import logs\n"
        "logs.configure('info', human=False, flush_seconds=600)\n"
        "logs.RequestLog('info').write('GET', '/api/jobs', 200, time.perf_counter(), 3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert json_lines(done.stdout)[0]["path"] == "/api/jobs", done
