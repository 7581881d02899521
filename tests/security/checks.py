"""Assertions and small admin-side look-ups shared by the security tests.

Each look-up goes through the admin API as the bootstrap admin, so a test checks what the
server really kept, not what the refused request claimed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from tests.conftest import Server
from tests.events.helpers import post_events
from tests.support import ArmaditoAgent

SCAN_PARAMS = {"path": "/tmp/scanme"}


def create_scan_job(server: Server, *station_ids: int, priority: int = 1) -> int:
    response = server.admin.post(
        "/jobs",
        {
            "type": "Scan",
            "station_ids": list(station_ids),
            "priority": priority,
            "params": SCAN_PARAMS,
        },
    )
    assert response.status_code == 201, response.text
    job_id: int = response.json()["id"]
    return job_id


def target_statuses(server: Server, job_id: int) -> dict[int, str]:
    """station id -> status of that station's part of the job."""
    response = server.admin.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return {t["station_id"]: t["status"] for t in response.json()["targets"]}


def target_of(server: Server, job_id: int, station_id: int) -> dict[str, Any]:
    response = server.admin.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    for target in response.json()["targets"]:
        if target["station_id"] == station_id:
            return dict(target)
    raise AssertionError(f"station {station_id} is not a target of job {job_id}")


def queued_job_ids(server: Server, station_id: int) -> set[int]:
    response = server.admin.get("/jobs", station_id=station_id, status="queued")
    assert response.status_code == 200, response.text
    return {job["id"] for job in response.json()["items"]}


def station_total(server: Server) -> int:
    response = server.admin.get("/stations")
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def station_uuids(server: Server) -> set[str]:
    response = server.admin.get("/stations", limit=1000)
    assert response.status_code == 200, response.text
    return {station["uuid"] for station in response.json()["items"]}


def alert_total(server: Server, **params: Any) -> int:
    response = server.admin.get("/alerts", **params)
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def scan_total(server: Server, **params: Any) -> int:
    response = server.admin.get("/scans", **params)
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def key_info(server: Server, key: str) -> dict[str, Any]:
    response = server.admin.get("/enrollment-keys")
    assert response.status_code == 200, response.text
    for row in response.json():
        if row["prefix"] == key[:5]:  # stored hashed: listed by prefix
            return dict(row)
    raise AssertionError(f"key {key} is not listed")


def audit_actions(server: Server, **params: Any) -> list[dict[str, Any]]:
    response = server.admin.get("/audit", limit=1000, **params)
    assert response.status_code == 200, response.text
    return list(response.json())


EICAR = {
    "name": "Eicar-Test-Signature",
    "filepath": "/tmp/scanme/eicar.com",
    "action": "none",
    "module_name": "clamav",
    "detection_time": 1500000100,
}

SCAN_OBJ = {
    "progress": 100,
    "duration": "PT0H0M0S",
    "scanned_count": 42,
    "malware_count": 1,
    "suspicious_count": 0,
}


def with_credentials(agent: ArmaditoAgent, mode: str) -> ArmaditoAgent:
    """The same agent presenting its own station credential in one of the accepted forms.

    ``bearer``: ``Authorization: Bearer <agent_token>``; ``basic-uuid`` / ``basic-id``:
    per-station Basic with the station uuid / agent id as user and the agent token as
    password (what an Armadito agent sends after a 401 challenge).
    """
    token = agent.token
    assert token, "the agent must have enrolled with a bearer token first"
    if mode == "bearer":
        return dataclasses.replace(agent, token=token, basic=None)
    user = agent.uuid if mode == "basic-uuid" else str(agent.agent_id)
    return dataclasses.replace(agent, token=None, basic=(user, token))


def reports(server: Server, agent: ArmaditoAgent) -> dict[str, httpx.Response]:
    """One request of each report an agent sends, with its credentials."""
    return {
        "Runjobs": agent.runjob(1),
        "Scan": agent.scan(SCAN_OBJ),
        "Alerts": agent.alerts([EICAR]),
        "State": agent.state(),
        "AVConfig": agent.avconfig([("on-access:enabled", "1")]),
        "Scheduler": agent.scheduler([("scheduler:task:Getjobs:freq", "* * * * *")]),
        "Events": post_events(server, agent, [{"type": "component_started", "data": {}}]),
    }
