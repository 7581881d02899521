""" "Database: available" (issue 23): a procedure reads what an operator reads through the
admin API (stations, groups, alerts, jobs, scans, state, effective configuration, recent
events of the station), bounded in rows and in reads per run, and never writes but through
the host actions."""

from __future__ import annotations

from typing import Any

from tests.conftest import Server
from tests.events.helpers import alert, garrison_agent
from tests.support import sqlite_only


def dry_run(server: Server, source: str, args: dict[str, Any]) -> dict[str, Any]:
    response = server.admin.post(
        "/procedures/threat_detected/test", {"args": args, "source": source}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_procedure_reads_jobs_scans_state_config_events_and_group_members(
    server: Server,
) -> None:
    agent = garrison_agent(server, hostname="pc-reads")
    sid = agent.agent_id
    scan = {"type": "Scan", "station_ids": [sid], "params": {"path": "/tmp"}}
    job = server.admin.post("/jobs", scan)
    assert job.status_code in (200, 201), job.text
    assert agent.state().status_code == 200
    assert agent.avconfig([("scan:action", "quarantine")]).status_code == 200
    assert agent.alerts([alert("Eicar-Test-Signature", "/tmp/e.com")]).status_code == 200
    assert server.admin.post("/groups", {"name": "lab"}).status_code == 201
    assert server.admin.post("/groups/lab/stations", {"add": [sid]}).status_code in (200, 201)
    assert (
        server.admin.patch(f"/stations/{sid}", {"latitude": 1.5, "longitude": -2.25}).status_code
        == 200
    )
    source = """
local args = ...
local jobs = garrison.jobs(args.id, 5)
local state = garrison.state(args.id)
local config = garrison.config(args.id, 'avconfig')
local recent = garrison.recent_events(args.id, 3, 'threat_detected')
local any = garrison.recent_events(args.id, 100)
local members = garrison.group_stations('lab')
local st = garrison.station(args.id)
return {
  job_type = jobs[1].type, job_status = jobs[1].status,
  state = state.global_status,
  action = config['scan:action'],
  threat = recent[1].data.virus, threats = #recent, events = #any > 3,
  members = members, missing_group = garrison.group_stations('nope') == nil,
  scans = #garrison.scans(args.id),
  latitude = st.latitude, longitude = st.longitude,
  no_state = garrison.state(999999) == nil, no_config = garrison.config(999999) == nil,
}
"""
    body = dry_run(server, source, {"id": sid})
    assert body["error"] is None, body
    assert body["result"] == {
        "job_type": "Scan",
        "job_status": "queued",
        "state": "up-to-date",
        "action": "quarantine",
        "threat": "Eicar-Test-Signature",
        "threats": 1,
        "events": True,
        "members": [sid],
        "missing_group": True,
        "scans": 0,
        "latitude": 1.5,
        "longitude": -2.25,
        "no_state": True,
        "no_config": True,
    }
    assert body["writes"] == []


@sqlite_only
def test_reads_are_bounded_in_rows_and_in_number(server: Server) -> None:
    agent = garrison_agent(server)
    items = [alert(f"T{i}", f"/tmp/{i}", 1500000000 + i) for i in range(120)]
    assert agent.alerts(items).status_code == 200
    rows = dry_run(
        server,
        "local args = ... return {#garrison.recent_alerts(args.id, 1000), "
        "#garrison.recent_events(args.id, 1000)}",
        {"id": agent.agent_id},
    )
    assert rows["result"] == [100, 100], rows
    many = dry_run(
        server,
        "local args = ... for i = 1, 60 do garrison.state(args.id) end return 1",
        {"id": agent.agent_id},
    )
    assert many["error"] == "runtime error: threat_detected:1: more than 50 host reads in one run"
    bad = dry_run(server, "return garrison.jobs('x')", {})
    assert bad["error"] == "runtime error: station id must be an integer"
