"""kill -9 during ingestion: every acknowledged event is stored, and every stored event
reaches the procedures exactly once."""

from __future__ import annotations

import signal
import threading
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select

from garrison.server.audit.models import AuditEntry
from garrison.server.events.models import Event
from tests.live import LiveServer, start_server
from tests.support import ArmaditoAgent, wait_for

PROCEDURE = "local args = ... garrison.audit('seen', tostring(args.pid))"
BATCH = 50


def _enroll(live: LiveServer) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {live.token}"}
    key = httpx.post(
        f"{live.url}/admin/v1/enrollment-keys", headers=admin, json={"uses": 5, "expires_in": 3600}
    ).json()["key"]
    with httpx.Client(base_url=live.url) as client:
        agent = ArmaditoAgent(client)
        assert agent.enroll(key).status_code == 200
    put = httpx.put(
        f"{live.url}/admin/v1/procedures/component_started", headers=admin, content=PROCEDURE
    )
    assert put.status_code == 200, put.text
    return {"Authorization": f"Bearer {agent.token}"}


def test_kill_9_during_ingestion_loses_nothing_acknowledged(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "data"
    live = start_server(data_dir, database_url)
    headers = _enroll(live)
    acknowledged: list[int] = []
    stop = threading.Event()

    def send() -> None:
        pid = 0
        with httpx.Client(base_url=live.url, timeout=10) as client:
            while not stop.is_set():
                batch = [
                    {
                        "id": f"ev-{pid + i}",
                        "type": "component_started",
                        "data": {"pid": pid + i, "component": 1},
                    }
                    for i in range(BATCH)
                ]
                try:
                    response = client.post("/api/events", json=batch, headers=headers)
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200 and response.json()["stored"] == BATCH:
                    acknowledged.extend(range(pid, pid + BATCH))
                pid += BATCH

    sender = threading.Thread(target=send)
    sender.start()
    try:
        wait_for(
            lambda: len(acknowledged) >= 20 * BATCH,
            timeout=20,
            what=f"{20 * BATCH} events acknowledged before the kill",
            every=0.05,
        )
    finally:
        live.stop(signal.SIGKILL, timeout=10)  # reads and closes its output pipe too
        stop.set()
        sender.join(10)

    again = start_server(data_dir, database_url)
    try:
        engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            stored = set(
                conn.scalars(
                    select(Event.data["pid"].as_integer()).where(Event.type == "component_started")
                )
            )
        assert set(acknowledged) <= stored

        def seen_and_total() -> tuple[Counter[str], int]:
            with engine.connect() as conn:
                seen = Counter(
                    conn.scalars(
                        select(AuditEntry.target).where(AuditEntry.action == "procedure.seen")
                    )
                )
                total = conn.scalar(
                    select(func.count()).select_from(Event).where(Event.type == "component_started")
                )
            return seen, int(total or 0)

        seen, _ = wait_for(
            seen_and_total,
            lambda st: sum(st[0].values()) >= len(stored) and st[1] == len(stored),
            timeout=60,
            what="every stored event through the procedures",
            every=0.2,
        )
        engine.dispose()
        assert {int(pid) for pid in seen} == stored
        assert max(seen.values()) == 1, "an event reached the procedures twice"
    finally:
        again.stop()
