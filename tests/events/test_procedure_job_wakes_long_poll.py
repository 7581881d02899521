"""A job a procedure creates wakes the station's long-poll as fast as one created through
the admin API: both go through the same use case, whose after-commit signal wakes it."""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.conftest import Server
from tests.events.helpers import alert, put_procedure

SCAN_ON_THREAT = "local args = ...\ngarrison.create_job(args.id, 'Scan', {path = '/tmp'}, 2)\n"
WAIT_SECONDS = 20


def test_a_job_created_by_a_procedure_answers_the_long_poll_at_once(
    server_factory: Any,
) -> None:
    # The watcher, which finds jobs nobody signalled, looks far less often than the wait.
    server: Server = server_factory(job_watch_seconds=2 * WAIT_SECONDS)
    watch = server.settings.job_watch_seconds
    put_procedure(server, "threat_detected", SCAN_ON_THREAT)
    agent = server.enrolled_agent()
    waiters = server.client.app.state.ctx.job_waiters  # type: ignore[attr-defined]
    got: list[tuple[float, dict[str, Any]]] = []

    def long_poll() -> None:
        response = server.client.get(
            agent.url(f"jobs?agent_id={agent.agent_id}&wait={WAIT_SECONDS}"),
            headers=agent.headers(),
        )
        got.append((time.monotonic(), response.json()))

    thread = threading.Thread(target=long_poll)
    thread.start()
    deadline = time.monotonic() + 10
    while waiters.waiting_count() == 0:  # the poll is held before the event arrives
        assert time.monotonic() < deadline, "the long-poll never started waiting"
        time.sleep(0.01)
    sent = time.monotonic()
    assert agent.alerts([alert()]).status_code == 200
    thread.join(WAIT_SECONDS + 5)
    assert got, "the long-poll did not return"
    answered, body = got[0]
    jobs = server.admin.get("/jobs", station_id=agent.agent_id).json()["items"]
    assert [j["created_by"] for j in jobs] == ["procedure:threat_detected"]
    assert [j["job_id"] for j in body["jobs"]] == [jobs[0]["id"]]
    # Well inside the watcher's interval (and the wait): the signal woke it, not a read.
    assert answered - sent < watch / 4
