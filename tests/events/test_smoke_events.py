from __future__ import annotations

import time

from tests.conftest import Server


def wait_for(predicate, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_flow(server: Server) -> None:
    agent = server.enrolled_agent()
    r = server.client.post(
        "/api/events",
        headers=agent.headers(),
        json=[
            {
                "id": "e1",
                "type": "process_started",
                "data": {
                    "time": 1700000000,
                    "unique_pid": "7",
                    "file_path": "/usr/bin/nc",
                    "md5": "a" * 32,
                },
            },
            {"id": "e2", "type": "nope", "data": {}},
            {
                "routing": {
                    "event_type": "STARTING_UP",
                    "event_id": "lc1",
                    "event_time": 1700000000000,
                },
                "event": {"STARTING_UP": {"ts": 1700000000}},
            },
        ],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stored"] == 2 and body["refused"] == 1, body
    put = server.client.put(
        "/admin/v1/procedures/threat_detected",
        headers=server.admin.headers,
        content="local args = ... garrison.audit('seen', args.virus)",
    )
    assert put.status_code == 200, put.text
    agent.alerts(
        [
            {
                "name": "Eicar",
                "filepath": "/tmp/x",
                "action": "none",
                "module_name": "clamav",
                "detection_time": 1500000100,
            }
        ]
    )
    types = {e["type"] for e in server.admin.get("/events", limit=100).json()["items"]}
    assert {"station_created", "station_connected", "threat_detected", "audit"} <= types, types
    wait_for(lambda: server.admin.get("/audit", action="procedure.seen").json())
    assert server.admin.get("/events", hash="a" * 32).json()["total"] == 1
