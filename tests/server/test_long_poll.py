"""Garrison extension: Getjobs with ?wait=N holds the request until a job is queued."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from garrison.server.audit.actor import SYSTEM
from garrison.server.jobs.actions import create_job
from garrison.server.store.engine import Database
from tests.conftest import Server, ServerFactory
from tests.support import SLACK_SECONDS, wait_for


# Holds a wake-up (a swap) to a second or two, no slack for a loaded machine: alone.
@pytest.mark.serial
def test_a_waiting_agent_gets_a_new_job_within_a_second(server: Server) -> None:
    agent = server.enrolled_agent()
    got: list[tuple[float, dict[str, Any]]] = []

    def wait() -> None:
        started = time.monotonic()
        response = server.client.get(
            agent.url(f"jobs?agent_id={agent.agent_id}&wait=20"), headers=agent.headers()
        )
        got.append((time.monotonic() - started, response.json()))

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.5)
    created = time.monotonic()
    job = server.admin.post(
        "/jobs", {"type": "Scan", "station_ids": [agent.agent_id], "params": {"path": "/tmp"}}
    )
    assert job.status_code == 201
    thread.join(10)
    assert got, "the long-poll did not return"
    elapsed, body = got[0]
    assert [j["job_id"] for j in body["jobs"]] == [job.json()["id"]]
    assert time.monotonic() - created < 1.0 + 0.5
    assert elapsed >= 0.5


def test_wait_times_out_with_no_jobs_and_rejects_bad_values(server: Server) -> None:
    agent = server.enrolled_agent()
    wait = 1
    started = time.monotonic()
    response = server.client.get(
        agent.url(f"jobs?agent_id={agent.agent_id}&wait={wait}"), headers=agent.headers()
    )
    assert response.json() == {"jobs": []}
    # The whole wait (less the clock's granularity), and not much more on a loaded machine.
    assert wait - 0.1 <= time.monotonic() - started < wait + 4
    for bad in ("-1", "61", "soon"):
        r = server.client.get(
            agent.url(f"jobs?agent_id={agent.agent_id}&wait={bad}"), headers=agent.headers()
        )
        assert r.status_code == 422
        assert r.json()["field"] == "wait"


def test_the_cached_check_in_path_never_hides_a_new_job(server_factory: ServerFactory) -> None:
    """With agent tokens cached, check-ins that find nothing skip the database; a job
    created for the station must still be handed out on its very next check-in."""
    server = server_factory(token_cache_seconds=60)
    agent = server.enrolled_agent()
    assert agent.getjobs().json() == {"jobs": []}  # caches the token, learns "nothing queued"

    def left_the_queued_set() -> bool:
        if not server.ctx.job_waiters.may_have_jobs(agent.agent_id):
            return True
        agent.getjobs()
        return False

    wait_for(left_the_queued_set, timeout=5, what="the station leaving the queued set", every=0.1)
    for _ in range(3):
        job = server.admin.post(
            "/jobs", {"type": "Scan", "station_ids": [agent.agent_id], "params": {"path": "/tmp"}}
        )
        assert job.status_code == 201
        got = agent.getjobs().json()["jobs"]
        assert [j["job_id"] for j in got] == [job.json()["id"]]
        assert agent.getjobs().json() == {"jobs": []}


def test_a_job_from_another_node_before_the_first_load_wakes_a_waiting_agent(
    server_factory: ServerFactory,
) -> None:
    """A long-poll that began before this node's job watcher first loaded, for a job another
    node queued meanwhile: the first load must wake it (it used to take the job for an old
    one, and the agent waited out its whole ``wait``)."""
    watch = 3.0  # the watcher's first read comes this long after the start
    server = server_factory(job_watch_seconds=watch)
    agent = server.enrolled_agent()
    got: list[tuple[float, dict[str, Any]]] = []

    def wait() -> None:
        started = time.monotonic()
        response = server.client.get(
            agent.url(f"jobs?agent_id={agent.agent_id}&wait=30"), headers=agent.headers()
        )
        got.append((time.monotonic() - started, response.json()))

    thread = threading.Thread(target=wait)
    thread.start()
    wait_for(server.ctx.job_waiters.waiting_count, what="the long-poll is held")
    if server.ctx.job_waiters.may_have_jobs(agent.agent_id) is False:
        raise AssertionError("the watcher loaded before the job: the test proves nothing")
    # Another node: its own Database, none of this node's after-commit subscribers.
    other = Database(server.settings.resolved_database_url())
    try:
        job = create_job(other, SYSTEM, "Scan", 1, {"path": "/tmp"}, station_ids=[agent.agent_id])
    finally:
        other.dispose()
    thread.join(2 * watch + SLACK_SECONDS)
    assert got, "the long-poll was not woken by the watcher's first load"
    assert [j["job_id"] for j in got[0][1]["jobs"]] == [job.job.id]
