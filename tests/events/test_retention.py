"""Per-type retention: settable through the admin API, enforced by purge_expired in
bounded batches, removing only the expired events of each type.  Age counts from receipt
(the server's clock); the purge is run "days later" by giving it that ``now``."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from garrison.server.events import partitions
from garrison.server.events.retention import purge_expired
from tests.conftest import Server
from tests.events.helpers import MD5, events, post_events
from tests.support import assert_json_error, sqlite_only

DAY = 86400


def days_later(days: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)


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
        process("p-1", 0),
        amsi("a-1", 0),  # amsi_scan keeps 30 days
        threat("t-1", 0),  # threat keeps 365 days
    ]
    assert post_events(server, agent, batch).json()["stored"] == 3
    assert server.admin.patch("/events/retention", {"process_started": 10}).status_code == 200
    before = {e["id"] for e in events(server)}

    assert purge_expired(server.db, batch=1, now=days_later(9)) == 0
    assert purge_expired(server.db, batch=1, now=days_later(11)) == 1
    after = {e["id"] for e in events(server)}
    assert before - after == {"p-1"}
    assert purge_expired(server.db, batch=1, now=days_later(31)) == 1
    assert [e["id"] for e in events(server, type="amsi_scan")] == []
    assert [e["id"] for e in events(server, type="threat")] == ["t-1"]
    # Their search terms went with them.
    assert events(server, hash=MD5) == []
    # Nothing else is expired then.
    assert purge_expired(server.db, now=days_later(31)) == 0


def test_age_counts_from_receipt_not_from_the_station_clock(server: Server) -> None:
    """An event whose station time is 40 days old is kept 30 days from its arrival, and one
    dated far in the future goes when its retention from arrival is over."""
    agent = server.enrolled_agent()
    batch = [amsi("a-40-days-old", 40), amsi("a-in-2-years", -730), process("p-old", 400)]
    assert post_events(server, agent, batch).json()["stored"] == 3
    assert purge_expired(server.db) == 0
    assert purge_expired(server.db, now=days_later(29)) == 0
    stored = {e["id"]: e for e in events(server) if e["origin"] == "station"}
    assert set(stored) == {"a-40-days-old", "a-in-2-years", "p-old"}
    # Both times are shown: the station's, and the server's receipt.
    old = stored["a-40-days-old"]
    assert time.time() - dt.datetime.fromisoformat(old["time"]).timestamp() > 39 * DAY
    assert abs(time.time() - dt.datetime.fromisoformat(old["received_at"]).timestamp()) < 600
    assert purge_expired(server.db, now=days_later(31)) == 3
    assert [e["id"] for e in events(server) if e["origin"] == "station"] == []


def test_purge_works_in_bounded_batches(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = server.enrolled_agent()
    old = [amsi(f"old-{i}", 40) for i in range(30)]
    # A threat (365 days) on the same day keeps PostgreSQL's day partition from being
    # dropped whole, and with no compaction allowed (test_partitions.py covers both) its
    # expired rows go in batches.
    monkeypatch.setattr(partitions, "COMPACT_MAX_KEPT", 0)
    assert post_events(server, agent, [*old, threat("kept", 40)]).json()["stored"] == 31
    month = days_later(31)
    # Bounded batches: max_batches caps one run, the next run goes on.
    assert purge_expired(server.db, batch=10, max_batches=2, now=month) == 20
    assert purge_expired(server.db, batch=10, max_batches=2, now=month) == 10
    assert purge_expired(server.db, batch=10, max_batches=2, now=month) == 0
    assert [e["id"] for e in events(server, type="amsi_scan")] == []
