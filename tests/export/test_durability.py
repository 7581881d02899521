"""A SIEM that goes away: the backlog waits, drains in order, nothing lost or repeated;
plus aggregation, the HIPS filter, the backlog bound and the metrics."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from bench.common import free_port
from tests.conftest import Server
from tests.export import checks
from tests.export.rsyslog import rsyslog_for
from tests.support import wait_for

FIREWALL, HIPS = "FirewallAggregated_Event", "HipsAggregated_Event"


def target(server: Server, name: str, port: int, transport: str = "tcp", **options: Any) -> int:
    options.setdefault("aggregation_window_seconds", 0)
    options.setdefault("heartbeat_seconds", 0)
    options.setdefault("profile", "garrison")  # Garrison's own types travel too
    created = server.admin.post(
        "/export-targets",
        {
            "name": name,
            "format": "eset-json",
            "transport": transport,
            "host": "127.0.0.1",
            "port": port,
            "options": options,
        },
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def send(
    server: Server,
    headers: dict[str, str],
    first: int,
    count: int,
    event_type: str = "component_started",
    **data: Any,
) -> None:
    batch = [
        {"id": f"{event_type}-{first + i}", "type": event_type, "data": {"pid": first + i, **data}}
        for i in range(count)
    ]
    response = server.client.post("/api/events", json=batch, headers=headers)
    assert response.json()["stored"] == count, response.text


def metric(server: Server, name: str, target: str) -> int:
    """A target's counter or gauge from /metrics (0 while it has none)."""
    found = re.search(rf'{name}\{{target="{target}"\}} (\d+)', server.client.get("/metrics").text)
    return int(found.group(1)) if found else 0


def wait_refused(server: Server, target: str) -> None:
    """Until the exporter has met the closed port and counted the failure (it then backs off
    and keeps the backlog)."""
    wait_for(
        lambda: metric(server, "garrison_export_failed_total", target),
        timeout=15,
        what=f"a failed send to {target} counted",
    )


def pids(lines: list[str]) -> list[int]:
    out = []
    for line in lines:
        record = json.loads(checks.envelope(line, "garrison").msg)
        if record["event_type"] == "component_started":
            out.append(record["pid"])
    return out


def test_receiver_restart_mid_stream_delivers_each_event_once_in_order(
    server: Server, tmp_path: Path
) -> None:
    """RELP: the receiver acknowledges what it took, so stopping it in the middle of a stream
    (with messages in flight) loses nothing and repeats nothing."""
    rsyslog = rsyslog_for(tmp_path, {"siem": False}, None, relp=frozenset({"siem"}))
    rsyslog.start()
    target(server, "siem", rsyslog.inputs["siem"][0], batch_size=20, transport="relp")
    headers = server.enrolled_agent().headers()
    total, sent = 600, 0
    while sent < 200:
        send(server, headers, sent, 20)
        sent += 20
    rsyslog.wait_lines("siem", lambda lines: len(pids(lines)) >= 100, timeout=20)
    rsyslog.stop()  # the SIEM goes away in the middle of the stream
    while sent < 400:
        send(server, headers, sent, 20)
        sent += 20
    wait_refused(server, "siem")
    assert server.admin.get("/export-targets").json()[0]["lag"] > 0
    rsyslog.start()  # it comes back; the backlog drains
    while sent < total:
        send(server, headers, sent, 20)
        sent += 20
    lines = rsyslog.wait_lines("siem", lambda ls: len(pids(ls)) >= total, timeout=60)
    rsyslog.stop()
    received = pids(lines)
    assert received == list(range(total)), (
        f"missing {sorted(set(range(total)) - set(received))[:10]}, "
        f"repeated {[p for p in set(received) if received.count(p) > 1][:10]}"
    )


def test_tcp_receiver_down_between_batches_gets_the_backlog_once_in_order(
    server: Server, tmp_path: Path
) -> None:
    """Plain TCP: a SIEM that is down when events arrive gets them all, once and in order,
    when it returns.  (TCP cannot tell what a receiver dropped while stopping mid-read; RELP
    can: see the test above.)"""
    rsyslog = rsyslog_for(tmp_path, {"siem": False}, None)
    rsyslog.start()
    target(server, "siem", rsyslog.inputs["siem"][0], batch_size=20)
    headers = server.enrolled_agent().headers()
    send(server, headers, 0, 100)
    rsyslog.wait_lines("siem", lambda lines: len(pids(lines)) >= 100, timeout=20)
    rsyslog.stop()
    for first in range(100, 300, 20):
        send(server, headers, first, 20)
    wait_refused(server, "siem")
    down = server.admin.get("/export-targets").json()[0]
    assert down["lag"] > 0
    # The failed sends are counted, with the last one's reason.
    assert down["failures"] >= 1
    assert "unreachable" in down["last_error"]
    assert down["last_error_at"] is not None
    rsyslog.start()
    send(server, headers, 300, 100)
    lines = rsyslog.wait_lines("siem", lambda ls: len(pids(ls)) >= 400, timeout=60)
    rsyslog.stop()
    assert pids(lines) == list(range(400))
    wait_for(
        lambda: server.admin.get("/export-targets").json()[0]["handled"],
        lambda handled: handled >= 400,
        timeout=20,
        what="the 400 events counted as handled",
    )


def test_refused_connections_are_retried_and_do_not_slow_ingestion(
    server: Server, tmp_path: Path
) -> None:
    port = free_port()  # nobody listens here yet
    target(server, "down", port)
    headers = server.enrolled_agent().headers()
    started = time.monotonic()
    for first in range(0, 200, 50):
        send(server, headers, first, 50)
    assert time.monotonic() - started < 10
    wait_refused(server, "down")
    assert metric(server, "garrison_export_lag", "down") > 0
    rsyslog = rsyslog_for(tmp_path, {"late": False}, None)
    rsyslog.inputs["late"] = (port, False)
    rsyslog.start()
    try:
        lines = rsyslog.wait_lines("late", lambda ls: len(pids(ls)) >= 200, timeout=60)
        assert pids(lines) == list(range(200))
    finally:
        rsyslog.stop()


def test_identical_firewall_events_are_aggregated_and_low_hips_filtered(
    server: Server, tmp_path: Path
) -> None:
    rsyslog = rsyslog_for(tmp_path, {"agg": False}, None)
    rsyslog.start()
    try:
        target(server, "agg", rsyslog.inputs["agg"][0], aggregation_window_seconds=1.0)
        agent = server.enrolled_agent()
        now = int(time.time())
        fw = {
            "time": now,
            "event": "blocked",
            "protocol": "TCP",
            "source_address": "10.0.0.5",
            "target_address": "10.0.0.9",
            "target_port": 445,
            "rule_name": "deny smb",
        }
        events = [{"type": "firewall_event", "data": fw} for _ in range(5)]
        events.append({"type": "firewall_event", "data": {**fw, "target_port": 139}})
        events.append(
            {"type": "hips_event", "data": {"time": now, "application": "a", "severity": "Warning"}}
        )
        events.append(
            {
                "type": "hips_event",
                "data": {"time": now, "application": "b", "severity": "Critical"},
            }
        )
        response = server.client.post("/api/events", json=events, headers=agent.headers())
        assert response.json()["stored"] == 8

        def received() -> list[dict[str, Any]]:
            return [
                json.loads(checks.envelope(line, "garrison").msg) for line in rsyslog.lines("agg")
            ]

        def all_six_firewall_events_in(records: list[dict[str, Any]]) -> bool:
            counts = [r["aggregate_count"] for r in records if r["event_type"] == FIREWALL]
            return sum(counts) >= 6 and any(r["event_type"] == HIPS for r in records)

        # Each aggregate goes out when its window closes: wait until every firewall event is
        # counted in one (so that a wrong split would show as an extra aggregate).
        records = wait_for(received, all_six_firewall_events_in, timeout=30, what="aggregates")
    finally:
        rsyslog.stop()
    firewall = [r for r in records if r["event_type"] == FIREWALL]
    assert sorted((r["target_port"], r["aggregate_count"]) for r in firewall) == [
        (139, 1),
        (445, 5),
    ]
    hips = [r for r in records if r["event_type"] == HIPS]
    assert [h["application"] for h in hips] == ["b"]  # Warning is below Error: not sent


def test_a_bounded_backlog_drops_the_oldest_and_counts_them(server: Server) -> None:
    target(server, "bounded", free_port(), max_backlog=50)
    headers = server.enrolled_agent().headers()
    send(server, headers, 0, 200)
    dropped = wait_for(
        lambda: metric(server, "garrison_export_dropped_total", "bounded"),
        timeout=20,
        what="dropped events counted",
    )
    assert dropped >= 150
    # The drop is counted when the batch is read, and the cursor moves past the dropped
    # events when that batch's (failed) send is recorded, a moment later.
    wait_for(
        lambda: server.admin.get("/export-targets").json()[0]["lag"],
        lambda lag: lag <= 50,
        timeout=20,
        what="the cursor past the dropped events",
    )
