"""Three `garrison serve` nodes on one PostgreSQL database behind a real haproxy serve one
fleet with the two-node guarantees: each event through the procedures once, a job created on
any node wakes a poll held through the balancer, a stopped node loses nothing it
acknowledged and the balancer sends the fleet to the others."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from bench.common import free_port
from garrison.server.audit.models import AuditEntry
from tests.live import LiveServer, start_server
from tests.support import ArmaditoAgent, wait_for

PROCEDURE = "local args = ... garrison.audit('seen', tostring(args.pid))"

HAPROXY = """\
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    option http-server-close
backend garrison
    balance roundrobin
    option httpchk GET /admin/v1/health
    default-server inter 300ms fall 1 rise 1
{servers}
frontend fleet
    bind 127.0.0.1:{port}
    default_backend garrison
"""


@dataclass
class Fleet:
    nodes: list[LiveServer]
    url: str  # the balancer's
    admin: dict[str, str]
    key: str


@pytest.fixture
def fleet(tmp_path: Path, database_url: str) -> Iterator[Fleet]:
    if not database_url.startswith("postgresql"):
        pytest.skip("several nodes share a PostgreSQL database")
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.fail("haproxy is not installed (.ci/run installs it)")
    env = {
        "GARRISON_SECRETS_KEY_FILE": str(tmp_path / "secrets.key"),
        "GARRISON_WORKERS": "1",
    }
    nodes: list[LiveServer] = []
    balancer: subprocess.Popen[bytes] | None = None
    try:
        for name in "abc":
            nodes.append(start_server(tmp_path / name, database_url, env, wait=60))
            # The first node's start created the content keys the others must share.
            env["GARRISON_CONTENT_KEY_DIR"] = str(tmp_path / "a")
        port = free_port()
        servers = "\n".join(
            f"    server {i} {n.url.removeprefix('http://')} check" for i, n in enumerate(nodes)
        )
        config = tmp_path / "haproxy.cfg"
        config.write_text(HAPROXY.format(servers=servers, port=port))
        balancer = subprocess.Popen([haproxy, "-db", "-f", str(config)])
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/admin/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=20, what="haproxy up", every=0.1)
        admin = {"Authorization": f"Bearer {nodes[0].token}"}
        key = httpx.post(
            f"{url}/admin/v1/enrollment-keys", headers=admin, json={"uses": 20}
        ).json()["key"]
        yield Fleet(nodes, url, admin, key)
    finally:
        if balancer is not None:
            balancer.terminate()
            balancer.wait(10)
        for node in nodes:
            node.stop()


def enroll(fleet: Fleet) -> ArmaditoAgent:
    with httpx.Client(base_url=fleet.url) as client:
        agent = ArmaditoAgent(client)
        assert agent.enroll(fleet.key).status_code == 200
    return agent


def test_each_event_reaches_the_procedures_once_with_three_nodes(
    fleet: Fleet, database_url: str
) -> None:
    assert (
        httpx.put(
            f"{fleet.url}/admin/v1/procedures/component_started",
            headers=fleet.admin,
            content=PROCEDURE,
        ).status_code
        == 200
    )
    agent = enroll(fleet)
    headers = {"Authorization": f"Bearer {agent.token}"}
    sent = 0
    for _ in range(18):  # round robin: six batches through each node
        batch = [
            {"id": f"t-{sent + i}", "type": "component_started", "data": {"pid": sent + i}}
            for i in range(20)
        ]
        r = httpx.post(f"{fleet.url}/api/events", json=batch, headers=headers)
        assert r.status_code == 200
        assert r.json()["stored"] == 20
        sent += 20
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))

    def seen() -> Counter[str]:
        with engine.connect() as conn:
            return Counter(
                conn.scalars(select(AuditEntry.target).where(AuditEntry.action == "procedure.seen"))
            )

    try:
        wait_for(seen, lambda s: sum(s.values()) >= sent, timeout=60, what="every event seen")
        time.sleep(1.5)  # three nodes keep polling: a duplicate is an absence to check
        counts = seen()
    finally:
        engine.dispose()
    assert {int(p) for p in counts} == set(range(sent))
    assert max(counts.values()) == 1


# Holds a wake-up (a swap) to a second or two, no slack for a loaded machine: alone.
@pytest.mark.serial
def test_a_job_on_any_node_wakes_a_poll_held_through_the_balancer(fleet: Fleet) -> None:
    for node in fleet.nodes:  # the job is created on each node in turn
        agent = enroll(fleet)
        answer: dict[str, float] = {}

        def poll(agent: ArmaditoAgent = agent, answer: dict[str, float] = answer) -> None:
            r = httpx.get(
                f"{fleet.url}/api/jobs?agent_id={agent.agent_id}&wait=20",
                headers={"Authorization": f"Bearer {agent.token}"},
                timeout=30,
            )
            assert r.json()["jobs"], r.text
            answer["at"] = time.monotonic()

        waiter = threading.Thread(target=poll)
        waiter.start()
        time.sleep(0.5)  # the poll is held
        created = time.monotonic()
        job = httpx.post(
            f"{node.url}/admin/v1/jobs",
            headers=fleet.admin,
            json={"type": "Scan", "station_ids": [agent.agent_id], "params": {"path": "/tmp"}},
        )
        assert job.status_code == 201
        waiter.join(25)
        assert answer["at"] - created < 2.0


def test_a_stopped_node_loses_nothing_and_the_fleet_moves_on(fleet: Fleet) -> None:
    agent = enroll(fleet)
    headers = {"Authorization": f"Bearer {agent.token}"}
    acknowledged = []
    for i in range(9):
        batch = [
            {"id": f"s-{i}-{j}", "type": "component_started", "data": {"pid": j}} for j in range(10)
        ]
        r = httpx.post(f"{fleet.url}/api/events", json=batch, headers=headers)
        assert r.status_code == 200
        acknowledged += [f"s-{i}-{j}" for j in range(10)]
    fleet.nodes[0].stop()
    # The balancer's health check takes the node out; every request then succeeds.
    wait_for(
        lambda: [
            httpx.get(
                f"{fleet.url}/api/jobs?agent_id={agent.agent_id}", headers=headers
            ).status_code
            for _ in range(3)
        ],
        lambda codes: codes == [200, 200, 200],
        timeout=15,
        what="the fleet served by the two nodes left",
        every=0.2,
    )
    search = httpx.get(
        f"{fleet.url}/admin/v1/events",
        headers=fleet.admin,
        params={"type": "component_started", "limit": 1000},
    ).json()
    assert sorted(e["id"] for e in search["items"]) == sorted(acknowledged)
    for _ in range(6):
        batch = [{"id": f"after-{_}", "type": "component_started", "data": {"pid": 1}}]
        r = httpx.post(f"{fleet.url}/api/events", json=batch, headers=headers)
        assert r.status_code == 200
