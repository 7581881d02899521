"""`garrison serve --workers 2` on SQLite and PostgreSQL: what one process used to hold alone
holds across its workers (a job wakes a poll another worker holds, a deleted station's
token is refused by every worker, each consumer runs once), a worker killed with kill -9
under load loses nothing it acknowledged, and a burst is refused with 503 + Retry-After."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from garrison.server.audit.models import AuditEntry
from garrison.server.events.models import Event
from tests.live import LiveServer, start_server
from tests.response.helpers import ResponseAgent
from tests.server.multiprocess import Pinned, pinned_on_every_worker, worker_pids
from tests.support import ArmaditoAgent, wait_for

WORKERS = 2
PROCEDURE = "local args = ... garrison.audit('seen', tostring(args.pid))"


def sync_url(database_url: str) -> str:
    return database_url.replace("postgresql://", "postgresql+psycopg://")


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path / "data", database_url, {"GARRISON_WORKERS": str(WORKERS)}, wait=60
    )
    try:
        yield live
    finally:
        live.stop()


def enrolled(server: LiveServer) -> ArmaditoAgent:
    admin = {"Authorization": f"Bearer {server.token}"}
    key = httpx.post(
        f"{server.url}/admin/v1/enrollment-keys", headers=admin, json={"uses": 5}
    ).json()["key"]
    with httpx.Client(base_url=server.url) as client:
        agent = ArmaditoAgent(client)
        assert agent.enroll(key).status_code == 200
    return agent


def agent_headers(agent: ArmaditoAgent) -> dict[str, str]:
    return {"Authorization": f"Bearer {agent.token}", "Content-Type": "application/json"}


# Holds a wake-up (a swap) to a second or two, no slack for a loaded machine: alone.
@pytest.mark.serial
def test_a_job_created_on_one_worker_wakes_a_poll_held_by_another(server: LiveServer) -> None:
    pids = worker_pids(server, WORKERS)
    pinned = pinned_on_every_worker(server, pids)
    admin = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    try:
        for holder, creator in ((pinned[0], pinned[1]), (pinned[1], pinned[0])):
            assert holder.worker != creator.worker
            agent = enrolled(server)
            answer: dict[str, Any] = {}

            def poll(
                holder: Pinned = holder,
                agent: ArmaditoAgent = agent,
                answer: dict[str, Any] = answer,
            ) -> None:
                path = f"/api/jobs?agent_id={agent.agent_id}&wait=20"
                status, _, body = holder.request("GET", path, None, agent_headers(agent))
                answer.update(status=status, body=body, at=time.monotonic())

            waiter = threading.Thread(target=poll)
            waiter.start()
            time.sleep(0.5)  # the poll is held (nothing queued)
            assert "status" not in answer
            created = time.monotonic()
            job = {"type": "Scan", "station_ids": [agent.agent_id], "params": {"path": "/tmp"}}
            status, _, body = creator.request("POST", "/admin/v1/jobs", job, admin)
            assert status == 201, body
            waiter.join(25)
            assert answer["status"] == 200, answer
            assert answer["body"]["jobs"], answer
            assert answer["at"] - created < 2.0
    finally:
        for p in pinned:
            p.close()


def test_a_job_created_on_one_worker_is_fetched_at_once_from_another(server: LiveServer) -> None:
    """The Armadito way: no long-poll; the agent asks right after the operator created the
    job, and its check-in lands on the other worker (whose fast path had just answered that
    station with nothing queued)."""
    pids = worker_pids(server, WORKERS)
    pinned = pinned_on_every_worker(server, pids)
    admin = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    try:
        for checker, creator in ((pinned[0], pinned[1]), (pinned[1], pinned[0])):
            agent = enrolled(server)
            path = f"/api/jobs?agent_id={agent.agent_id}"
            for _ in range(3):  # the token and "nothing queued" are now known on the checker
                status, _, body = checker.request("GET", path, None, agent_headers(agent))
                assert (status, body["jobs"]) == (200, []), body
            job = {"type": "Scan", "station_ids": [agent.agent_id], "params": {"path": "/tmp"}}
            status, _, created = creator.request("POST", "/admin/v1/jobs", job, admin)
            assert status == 201, created
            status, _, body = checker.request("GET", path, None, agent_headers(agent))
            assert status == 200, body
            assert [j["job_id"] for j in body["jobs"]] == [created["id"]], body
    finally:
        for p in pinned:
            p.close()


def test_a_hunt_created_on_one_worker_is_handed_out_at_once_by_another(
    server: LiveServer,
) -> None:
    """A hunt started through one worker reaches a station enrolled just after, whose first
    check-in lands on the other worker: that worker's view of the active hunts was read
    before the hunt began (its watch reads them every 2 s; the siblings' counter makes it
    read them now).  The stations enrolled before the hunt are given it when it is made."""
    pids = worker_pids(server, WORKERS)
    pinned = pinned_on_every_worker(server, pids)
    admin = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    key = httpx.post(
        f"{server.url}/admin/v1/enrollment-keys", headers=admin, json={"uses": 5}
    ).json()["key"]

    def garrison_agent() -> ResponseAgent:
        with httpx.Client(base_url=server.url) as client:
            agent = ResponseAgent(client)
            assert agent.enroll(key).status_code == 200
        return agent

    def check_in(on: Pinned, agent: ResponseAgent) -> list[int]:
        path = f"/api/jobs?agent_id={agent.agent_id}"
        status, _, body = on.request("GET", path, None, agent.headers())
        assert status == 200, body
        return [j["obj"]["hunt_id"] for j in body["jobs"] if j["job_type"] == "Hunt"]

    try:
        for checker, creator in ((pinned[0], pinned[1]), (pinned[1], pinned[0])):
            early = garrison_agent()
            for _ in range(3):  # the checker has read the active hunts by now
                check_in(checker, early)
            hunt = {
                "question": {"type": "FindFile", "sha256": "cd" * 32},
                "target": {"all": True},
                "expires_in": 3600,
            }
            status, _, created = creator.request("POST", "/admin/v1/hunts", hunt, admin)
            assert status == 201, created
            late = garrison_agent()
            assert created["id"] in check_in(checker, late)
    finally:
        for p in pinned:
            p.close()


def test_a_deleted_station_s_token_is_refused_by_every_worker(server: LiveServer) -> None:
    agent = enrolled(server)
    pids = worker_pids(server, WORKERS)
    pinned = pinned_on_every_worker(server, pids)
    path = f"/api/jobs?agent_id={agent.agent_id}"
    try:
        for p in pinned:  # each worker now holds the token in its cache
            assert p.request("GET", path, None, agent_headers(agent))[0] == 200
        admin = {"Authorization": f"Bearer {server.token}"}
        status, _, _ = pinned[0].request(
            "DELETE", f"/admin/v1/stations/{agent.agent_id}", None, admin
        )
        assert status == 204
        for p in pinned:

            def status_on(p: Pinned = p) -> int:
                return p.request("GET", path, None, agent_headers(agent))[0]

            wait_for(
                status_on,
                lambda status: status == 401,
                timeout=5,
                what=f"worker {p.worker} refusing the deleted station's token",
                every=0.1,
            )
    finally:
        for p in pinned:
            p.close()


def test_each_event_reaches_the_procedures_once_with_workers(
    server: LiveServer, database_url: str
) -> None:
    admin = {"Authorization": f"Bearer {server.token}"}
    assert (
        httpx.put(
            f"{server.url}/admin/v1/procedures/component_started", headers=admin, content=PROCEDURE
        ).status_code
        == 200
    )
    agent = enrolled(server)
    pinned = pinned_on_every_worker(server, worker_pids(server, WORKERS))
    sent = 0
    try:
        for round_ in range(16):
            batch = [
                {"id": f"w-{sent + i}", "type": "component_started", "data": {"pid": sent + i}}
                for i in range(25)
            ]
            status, _, body = pinned[round_ % WORKERS].request(
                "POST", "/api/events", batch, agent_headers(agent)
            )
            assert status == 200, body
            assert body["stored"] == 25, body
            sent += 25
    finally:
        for p in pinned:
            p.close()
    engine = create_engine(sync_url(database_url))

    def seen() -> Counter[str]:
        with engine.connect() as conn:
            return Counter(
                conn.scalars(select(AuditEntry.target).where(AuditEntry.action == "procedure.seen"))
            )

    try:
        wait_for(seen, lambda s: sum(s.values()) >= sent, timeout=60, what="every event seen")
        # Every worker keeps polling its consumers: a duplicate is an absence, which no
        # condition can wait for, so it gets a fixed window.
        time.sleep(1.5)
        counts = seen()
    finally:
        engine.dispose()
    assert {int(p) for p in counts} == set(range(sent))
    assert max(counts.values()) == 1


def test_a_worker_killed_under_load_loses_nothing_acknowledged(
    server: LiveServer, database_url: str
) -> None:
    agent = enrolled(server)
    pids = worker_pids(server, WORKERS)
    acknowledged: list[str] = []
    after_kill = threading.Event()
    acked_after_kill = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def load(n: int) -> None:
        i = 0
        while not stop.is_set():
            ids = [f"k-{n}-{i}-{j}" for j in range(20)]
            batch = [
                {"id": uid, "type": "component_started", "data": {"pid": j}}
                for j, uid in enumerate(ids)
            ]
            i += 1
            try:
                # A new connection each time: the kernel spreads them over the workers.
                r = httpx.post(
                    f"{server.url}/api/events", json=batch, headers=agent_headers(agent), timeout=30
                )
            except httpx.HTTPError:
                continue  # not acknowledged (the worker died under it): nothing to check
            if r.status_code == 200 and r.json()["stored"] + r.json()["duplicates"] == 20:
                with lock:
                    acknowledged.extend(ids)
                    if after_kill.is_set():
                        acked_after_kill[0] += 1

    with ThreadPoolExecutor(4) as pool:
        for n in range(4):
            pool.submit(load, n)
        wait_for(lambda: len(acknowledged), lambda n: n >= 400, timeout=30, what="load")
        os.kill(pids[0], signal.SIGKILL)
        after_kill.set()
        restarted = wait_for(
            lambda: worker_pids(server, WORKERS),
            lambda p: pids[0] not in p,
            timeout=30,
            what="the killed worker replaced",
        )
        wait_for(lambda: acked_after_kill[0], lambda n: n >= 20, timeout=30, what="serving on")
        stop.set()
    assert len(restarted) == WORKERS
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            uids = conn.scalars(select(Event.uid).where(Event.type == "component_started"))
            stored = {uid.split(":", 1)[1] for uid in uids}  # "s<station>:<the agent's id>"
    finally:
        engine.dispose()
    assert set(acknowledged) <= stored, len(set(acknowledged) - stored)


def test_a_burst_is_refused_with_retry_after_never_queued(
    tmp_path: Path, database_url: str
) -> None:
    live = start_server(
        tmp_path / "data",
        database_url,
        {"GARRISON_WORKERS": "1", "GARRISON_MAX_PENDING_REQUESTS": "2"},
    )
    try:
        agent = enrolled(live)
        headers = agent_headers(agent)

        def post(n: int) -> httpx.Response:
            body = [
                {"id": f"b-{n}-{j}", "type": "component_started", "data": {"pid": j}}
                for j in range(200)
            ]
            return httpx.post(f"{live.url}/api/events", json=body, headers=headers, timeout=30)

        statuses: Counter[int] = Counter()
        refused: list[httpx.Response] = []
        for burst in range(5):
            with ThreadPoolExecutor(32) as pool:
                answers = list(pool.map(post, range(burst * 32, burst * 32 + 32)))
            statuses.update(r.status_code for r in answers)
            refused += [r for r in answers if r.status_code == 503]
            if refused:
                break
        assert set(statuses) <= {200, 503}, statuses
        assert refused, statuses
        assert statuses[200], statuses
        body = refused[0].json()
        assert body["code"] == "overloaded"
        assert body["message"]
        assert int(refused[0].headers["retry-after"]) >= 1
        # Once the burst is over the node answers again.
        assert post(10_000).status_code == 200
    finally:
        live.stop()


def test_workers_default_to_one_on_sqlite(tmp_path: Path) -> None:
    from garrison.cli.workers import default_workers

    assert default_workers("sqlite") == 1
    assert default_workers("postgresql") == len(os.sched_getaffinity(0))


def test_a_named_lock_on_sqlite_is_held_by_one_process_at_a_time(tmp_path: Path) -> None:
    """What lets one worker at a time feed a consumer on SQLite (an flock per name)."""
    from garrison.server.store.engine import Database
    from garrison.server.store.locks import exclusive

    first, second = (Database(f"sqlite:///{tmp_path / 'g.db'}") for _ in range(2))
    try:
        with exclusive(first, "consumer:x") as held, exclusive(second, "consumer:x") as other:
            assert held
            assert not other
            with exclusive(second, "consumer:y") as unrelated:
                assert unrelated
        with exclusive(second, "consumer:x") as after:
            assert after
    finally:
        first.dispose()
        second.dispose()
