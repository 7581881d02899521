"""Two `garrison serve` processes on one PostgreSQL database: every event reaches the
procedures exactly once and an export target once, whichever node stored it."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from garrison.server.audit.models import AuditEntry
from garrison.server.events.models import Event
from tests.live import LiveServer, start_server
from tests.support import ArmaditoAgent, wait_for

PROCEDURE = "local args = ... garrison.audit('seen', tostring(args.pid))"
Nodes = tuple[LiveServer, LiveServer, dict[str, str], str]


@pytest.fixture
def nodes(tmp_path: Path, database_url: str) -> Iterator[Nodes]:
    """Two `garrison serve` processes on one PostgreSQL database, and an enrollment key."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several nodes share a PostgreSQL database")
    # Nodes of one database share the secrets key (docs/operations.md); the export test
    # writes in tmp_path, as the operator allows.
    env = {
        "GARRISON_SECRETS_KEY_FILE": str(tmp_path / "secrets.key"),
        "GARRISON_EXPORT_FILE_DIRS": str(tmp_path),
    }
    first = start_server(tmp_path / "a", database_url, env)
    second = start_server(tmp_path / "b", database_url, env)
    try:
        admin = {"Authorization": f"Bearer {first.token}"}
        key = httpx.post(
            f"{first.url}/admin/v1/enrollment-keys",
            headers=admin,
            json={"uses": 5, "expires_in": 3600},
        ).json()["key"]
        yield first, second, admin, key
    finally:
        first.stop()
        second.stop()


def test_each_event_reaches_the_procedures_once_with_two_nodes(
    nodes: Nodes, database_url: str
) -> None:
    first, second, admin, key = nodes
    try:
        assert (
            httpx.put(
                f"{second.url}/admin/v1/procedures/component_started",
                headers=admin,
                content=PROCEDURE,
            ).status_code
            == 200
        )
        with httpx.Client(base_url=first.url) as client:
            agent = ArmaditoAgent(client)
            assert agent.enroll(key).status_code == 200
        headers = {"Authorization": f"Bearer {agent.token}"}
        sent = 0
        for round_ in range(20):
            node = (first, second)[round_ % 2]
            batch = [
                {"id": f"n-{sent + i}", "type": "component_started", "data": {"pid": sent + i}}
                for i in range(25)
            ]
            r = httpx.post(f"{node.url}/api/events", json=batch, headers=headers)
            assert r.status_code == 200
            assert r.json()["stored"] == 25
            sent += 25
        engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))

        def seen_by_procedures() -> Counter[str]:
            with engine.connect() as conn:
                return Counter(
                    conn.scalars(
                        select(AuditEntry.target).where(AuditEntry.action == "procedure.seen")
                    )
                )

        wait_for(
            seen_by_procedures,
            lambda seen: sum(seen.values()) >= sent,
            timeout=30,
            what=f"{sent} events through the procedures",
            every=0.2,
        )
        # Both nodes keep polling: a duplicate is an absence to check, which no condition
        # can wait for, so it gets a fixed window.
        time.sleep(1.5)
        seen = seen_by_procedures()
        with engine.connect() as conn:
            stored = conn.scalar(
                select(func.count()).select_from(Event).where(Event.type == "component_started")
            )
        engine.dispose()
        assert stored == sent
        assert {int(p) for p in seen} == set(range(sent))
        assert max(seen.values()) == 1
    finally:
        first.stop()
        second.stop()


def test_a_job_created_on_one_node_reaches_an_agent_long_polling_the_other(nodes: Nodes) -> None:
    first, second, admin, key = nodes
    try:
        with httpx.Client(base_url=second.url) as client:
            agent = ArmaditoAgent(client)
            assert agent.enroll(key).status_code == 200
        latencies = []
        for _ in range(5):
            result: dict[str, float] = {}

            def poll(result: dict[str, float] = result) -> None:
                response = httpx.get(
                    f"{second.url}/api/jobs?agent_id={agent.agent_id}&wait=20",
                    headers={"Authorization": f"Bearer {agent.token}"},
                    timeout=30,
                )
                assert response.json()["jobs"], response.text
                result["received"] = time.monotonic()

            waiter = threading.Thread(target=poll)
            waiter.start()
            time.sleep(0.5)
            created = time.monotonic()
            job = httpx.post(
                f"{first.url}/admin/v1/jobs",
                headers=admin,
                json={"type": "Scan", "station_ids": [agent.agent_id], "params": {"path": "/tmp"}},
            )
            assert job.status_code == 201
            waiter.join(20)
            latencies.append(result["received"] - created)
        assert max(latencies) < 1.0, latencies
    finally:
        first.stop()
        second.stop()


def test_stopping_one_node_loses_nothing_it_acknowledged(nodes: Nodes) -> None:
    first, second, admin, key = nodes
    try:
        with httpx.Client(base_url=first.url) as client:
            agent = ArmaditoAgent(client)
            assert agent.enroll(key).status_code == 200
        headers = {"Authorization": f"Bearer {agent.token}"}
        acknowledged = []
        for i in range(10):
            batch = [
                {"id": f"s-{i}-{j}", "type": "component_started", "data": {"pid": j}}
                for j in range(20)
            ]
            r = httpx.post(f"{first.url}/api/events", json=batch, headers=headers)
            assert r.status_code == 200
            acknowledged += [f"s-{i}-{j}" for j in range(20)]
        first.stop()  # the node goes away; the other serves the same fleet
        search = httpx.get(
            f"{second.url}/admin/v1/events",
            headers=admin,
            params={"type": "component_started", "limit": 1000},
        ).json()
        assert sorted(e["id"] for e in search["items"]) == sorted(acknowledged)
        assert (
            httpx.get(
                f"{second.url}/api/jobs?agent_id={agent.agent_id}", headers=headers
            ).status_code
            == 200
        )
    finally:
        first.stop()
        second.stop()


def test_each_event_is_exported_once_with_two_nodes(nodes: Nodes, tmp_path: Path) -> None:
    """Both nodes run the target's consumer; one at a time sends, so each event is written
    once (both write to the same file, as both would to one SIEM)."""
    first, second, admin, key = nodes
    exported = tmp_path / "siem.ndjson"
    try:
        created = httpx.post(
            f"{first.url}/admin/v1/export-targets",
            headers=admin,
            json={
                "name": "shared",
                "format": "eset-json",
                "transport": "file",
                "path": str(exported),
                # Garrison's own profile: the eset one sends none of the component events.
                "options": {
                    "aggregation_window_seconds": 0,
                    "batch_size": 10,
                    "profile": "garrison",
                },
            },
        )
        assert created.status_code == 201, created.text
        with httpx.Client(base_url=first.url) as client:
            agent = ArmaditoAgent(client)
            assert agent.enroll(key).status_code == 200
        headers = {"Authorization": f"Bearer {agent.token}"}
        sent = 0
        for round_ in range(10):
            node = (first, second)[round_ % 2]
            batch = [
                {"id": f"x-{sent + i}", "type": "component_started", "data": {"pid": sent + i}}
                for i in range(30)
            ]
            r = httpx.post(f"{node.url}/api/events", json=batch, headers=headers)
            assert r.json()["stored"] == 30, r.text
            sent += 30
        # Once the cursor is at the end nothing more is sent: only a node holding the
        # target's lock sends, and it advances the cursor before letting go.
        deadline = time.monotonic() + 30
        lag = -1
        while time.monotonic() < deadline and lag != 0:
            time.sleep(0.2)
            lag = httpx.get(f"{second.url}/admin/v1/export-targets", headers=admin).json()[0]["lag"]
        assert lag == 0
        records = [json.loads(line) for line in exported.read_text().splitlines()]
        pids = Counter(r["pid"] for r in records if r["event_type"] == "component_started")
        assert set(pids) == set(range(sent))
        assert max(pids.values()) == 1
    finally:
        first.stop()
        second.stop()
