"""Per-type retention: settable through the admin API, enforced by purge_expired in
bounded batches, removing only the expired events of each type."""

from __future__ import annotations

import time
from typing import Any

from garrison.server.events.retention import purge_expired
from tests.conftest import Server
from tests.events.helpers import MD5, events, post_events
from tests.security.checks import assert_json_error
from tests.support import sqlite_only

DAY = 86400


def amsi(uid: str, days_ago: float) -> dict[str, Any]:
    return {
        "id": uid,
        "type": "amsi_scan",
        "data": {"time": int(time.time() - days_ago * DAY), "content": "x"},
    }


def process(uid: str, days_ago: float) -> dict[str, Any]:
    return {
        "id": uid,
        "type": "process_started",
        "data": {"time": int(time.time() - days_ago * DAY), "unique_pid": uid, "md5": MD5},
    }


def threat(uid: str, days_ago: float) -> dict[str, Any]:
    return {
        "id": uid,
        "type": "threat",
        "data": {"time": int(time.time() - days_ago * DAY), "threat_name": "X"},
    }


@sqlite_only
def test_defaults_telemetry_30_days_others_365(server: Server) -> None:
    response = server.admin.get("/events/retention")
    assert response.status_code == 200
    days = response.json()
    assert days["process_started"] == 30
    assert days["amsi_scan"] == 30
    assert days["firewall_event"] == 30
    assert days["threat_detected"] == 365
    assert days["threat"] == 365
    assert days["audit"] == 365
    from garrison.common.catalogue import CATALOGUE

    assert set(days) == set(CATALOGUE)


@sqlite_only
def test_setting_retention_and_its_validation(server: Server) -> None:
    changed = server.admin.patch("/events/retention", {"process_started": 10, "threat": 400})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["process_started"], changed.json()["threat"]) == (10, 400)
    assert server.admin.get("/events/retention").json()["process_started"] == 10
    for body, field in (
        ({"no_such_type": 5}, "no_such_type"),
        ({"process_started": 0}, "process_started"),
        ({"process_started": -3}, "process_started"),
        ({"process_started": 36501}, "process_started"),
        ({"process_started": True}, "process_started"),
        ({"process_started": "7"}, "process_started"),
        ({"process_started": 1.5}, "process_started"),
        ({"amsi_scan": 5, "no_such_type": 5}, "no_such_type"),
    ):
        response = server.admin.patch("/events/retention", body)
        assert assert_json_error(response, 422)["field"] == field, body
    # A refused change changes nothing, not even the valid part of it.
    days = server.admin.get("/events/retention").json()
    assert (days["process_started"], days["amsi_scan"]) == (10, 30)
    viewer = server.admin.as_role("looker", "viewer")
    assert_json_error(viewer.patch("/events/retention", {"process_started": 5}), 403)
    audit = [e for e in events(server, type="audit") if e["data"]["action"] == "events.retention"]
    assert len(audit) == 1


def test_purge_removes_only_expired_events_of_each_type(server: Server) -> None:
    agent = server.enrolled_agent()
    batch = [
        process("p-old-1", 20),
        process("p-old-2", 12),
        process("p-new", 1),
        amsi("a-old", 20),  # amsi_scan keeps 30 days
        amsi("a-expired", 31),
        threat("t-old", 200),  # threat keeps 365 days
    ]
    assert post_events(server, agent, batch).json()["stored"] == 6
    assert server.admin.patch("/events/retention", {"process_started": 10}).status_code == 200
    before = {e["id"] for e in events(server)}

    assert purge_expired(server.db, batch=1) == 3
    after = {e["id"] for e in events(server)}
    assert before - after == {"p-old-1", "p-old-2", "a-expired"}
    assert [e["id"] for e in events(server, type="process_started")] == ["p-new"]
    assert [e["id"] for e in events(server, type="amsi_scan")] == ["a-old"]
    assert [e["id"] for e in events(server, type="threat")] == ["t-old"]
    # Their search terms went with them.
    assert [e["id"] for e in events(server, hash=MD5)] == ["p-new"]
    # Nothing else is expired now.
    assert purge_expired(server.db) == 0
    assert {e["id"] for e in events(server)} == after


def test_purge_works_in_bounded_batches(server: Server) -> None:
    agent = server.enrolled_agent()
    old = [amsi(f"old-{i}", 40) for i in range(30)]
    assert post_events(server, agent, old).json()["stored"] == 30
    # Bounded batches: max_batches caps one run, the next run goes on.
    assert purge_expired(server.db, batch=10, max_batches=2) == 20
    assert post_events(server, agent, [amsi("fresh", 0)]).json()["stored"] == 1
    assert purge_expired(server.db, batch=10, max_batches=2) == 10
    assert [e["id"] for e in events(server, type="amsi_scan")] == ["fresh"]
