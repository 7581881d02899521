"""Procedures run from the event log: they get exactly the event's fields, act through the
host API, stop when disabled, and each stored event reaches them once (also with two
server processes on one database)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Server, ServerFactory
from tests.events.helpers import (
    alert,
    audit_targets,
    events,
    garrison_agent,
    last_seq,
    one_event,
    post_events,
    procedure_errors,
    put_procedure,
    wait_processed,
)
from tests.support import wait_for

DUMP_ARGS = """
local args = ...
local pairs_ = {}
for k, v in pairs(args) do pairs_[#pairs_ + 1] = k .. "=" .. tostring(v) end
table.sort(pairs_)
local target = args.virus .. "|" .. args.object .. "|" .. args.id
garrison.audit("args", target, table.concat(pairs_, ";"))
"""


def audit_entries(server: Server, action: str) -> list[dict[str, Any]]:
    response = server.admin.get("/audit", action=action)
    assert response.status_code == 200, response.text
    return list(reversed(response.json()))


def lua_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def test_args_are_exactly_the_events_fields(server: Server) -> None:
    put_procedure(server, "threat_detected", DUMP_ARGS)
    agent = server.enrolled_agent()
    assert agent.alerts([alert("Eicar-Test-Signature", "/tmp/scanme/eicar.com")]).status_code == 200
    (entry,) = wait_for(lambda: audit_entries(server, "procedure.args"), what="procedure ran")
    event = one_event(server, "threat_detected")
    assert entry["target"] == f"Eicar-Test-Signature|/tmp/scanme/eicar.com|{agent.agent_id}"
    expected = ";".join(sorted(f"{k}={lua_text(v)}" for k, v in event["data"].items()))
    assert entry["details"]["detail"] == expected
    # The audit entry names the event the procedure ran for.
    assert [v for k, v in entry["details"].items() if k != "detail"] == [event["seq"]]
    assert entry["actor"] == "procedure:threat_detected"


def test_args_of_an_ingested_event_with_an_indexed_family(server: Server) -> None:
    source = """
local args = ...
local names = {}
for i = 0, args.count - 1 do names[#names + 1] = args["name_" .. i] .. "@" .. args["md5_" .. i] end
garrison.audit("bases", tostring(args.id), table.concat(names, ","))
"""
    put_procedure(server, "virus_bases_received", source)
    agent = server.enrolled_agent()
    item = {
        "id": "vb-1",
        "type": "virus_bases_received",
        "data": {"name_0": "daily.cvd", "md5_0": "a" * 32, "name_1": "main.cvd", "md5_1": "b" * 32},
    }
    assert post_events(server, agent, [item]).json()["stored"] == 1
    (entry,) = wait_for(lambda: audit_entries(server, "procedure.bases"), what="procedure ran")
    assert entry["target"] == str(agent.agent_id)
    assert entry["details"]["detail"] == f"daily.cvd@{'a' * 32},main.cvd@{'b' * 32}"


def test_a_threat_procedure_opens_an_isolation_job(server: Server) -> None:
    put_procedure(
        server,
        "threat_detected",
        'local args = ...\ngarrison.create_job(args.id, "IsolateNetwork", {}, 3)\n',
    )
    agent = garrison_agent(server)
    assert agent.alerts([alert()]).status_code == 200

    def isolation_jobs() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = server.admin.get(
            "/jobs", type="IsolateNetwork", station_id=agent.agent_id
        ).json()["items"]
        return items

    (job,) = wait_for(isolation_jobs, what="isolation job")
    assert (job["type"], job["priority"], job["params"]) == ("IsolateNetwork", 3, {})
    assert job["created_by"] == "procedure:threat_detected"
    assert [(t["station_id"], t["status"]) for t in job["targets"]] == [(agent.agent_id, "queued")]
    # The agent gets it at its next check-in, as an urgent job.
    jobs = agent.getjobs().json()["jobs"]
    assert [(j["job_id"], j["job_type"], j["job_priority"]) for j in jobs] == [
        (job["id"], "IsolateNetwork", "3")
    ]
    assert server.admin.get("/jobs").json()["total"] == 1
    assert procedure_errors(server) == []


def test_a_procedure_that_cannot_act_is_recorded_and_acts_on_nothing(server: Server) -> None:
    put_procedure(
        server,
        "threat_detected",
        'local args = ...\ngarrison.create_job(args.id, "IsolateNetwork", {}, 3)\n',
    )
    armadito = server.enrolled_agent()  # runs Scan jobs only
    assert armadito.alerts([alert()]).status_code == 200
    (error,) = wait_for(lambda: procedure_errors(server), what="procedure error")
    event = one_event(server, "threat_detected")
    assert error["procedure"] == "threat_detected"
    assert error["event_seq"] == event["seq"]
    assert "cannot run IsolateNetwork jobs" in error["error"]
    assert server.admin.get("/jobs").json()["total"] == 0


def test_the_host_api_reads_the_station_its_groups_and_alerts(server: Server) -> None:
    source = """
local args = ...
local st = garrison.station(args.id)
local groups = garrison.groups(args.id)
local recent = garrison.recent_alerts(args.id, 5)
garrison.audit("read", st.uuid, table.concat({st.address, tostring(st.connected),
  table.concat(groups, "+"), recent[1].threat, recent[1].path, tostring(#recent)}, ","))
garrison.raise_alert(args.id, "Procedure.Raised", "/raised/by/procedure")
"""
    put_procedure(server, "threat_detected", source)
    agent = server.enrolled_agent()
    assert server.admin.post("/groups", {"name": "servers"}).status_code == 201
    member = server.admin.post("/groups/servers/stations", {"add": [agent.agent_id]})
    assert member.status_code in (200, 201), member.text
    assert agent.alerts([alert("Eicar-Test-Signature", "/tmp/e.com")]).status_code == 200
    (entry,) = wait_for(lambda: audit_entries(server, "procedure.read"), what="procedure ran")
    assert entry["target"] == agent.uuid
    assert entry["details"]["detail"] == "testclient,true,servers,Eicar-Test-Signature,/tmp/e.com,1"
    alerts = server.admin.get("/alerts").json()["items"]
    assert sorted(a["threat_name"] for a in alerts) == ["Eicar-Test-Signature", "Procedure.Raised"]
    # An alert a procedure raises is not a station's threat: no threat_detected, no loop.
    wait_processed(server, last_seq(server))
    assert len(events(server, type="threat_detected")) == 1
    assert procedure_errors(server) == []


def test_disable_stops_the_procedure_and_enable_resumes_it(server: Server) -> None:
    put_procedure(server, "station_connected", "local args = ...\ngarrison.audit('hi', args.id)")
    first = server.enrolled_agent()
    wait_for(lambda: audit_targets(server, "procedure.hi"), what="procedure ran")
    assert audit_targets(server, "procedure.hi") == [str(first.agent_id)]

    assert server.admin.post("/procedures/station_connected/disable").status_code == 200
    second = server.enrolled_agent()
    connected = events(server, type="station_connected", station_id=second.agent_id)
    wait_processed(server, connected[0]["seq"])
    assert audit_targets(server, "procedure.hi") == [str(first.agent_id)]

    assert server.admin.post("/procedures/station_connected/enable").status_code == 200
    third = server.enrolled_agent()
    wait_for(lambda: len(audit_targets(server, "procedure.hi")) == 2, what="procedure ran")
    # The event that arrived while it was disabled is not replayed.
    assert audit_targets(server, "procedure.hi") == [str(first.agent_id), str(third.agent_id)]


def test_a_procedure_set_disabled_does_not_run(server: Server) -> None:
    put_procedure(server, "station_connected", "garrison.audit('hi', 'x')", enabled=False)
    agent = server.enrolled_agent()
    seq = events(server, type="station_connected", station_id=agent.agent_id)[0]["seq"]
    wait_processed(server, seq)
    assert audit_targets(server, "procedure.hi") == []


def test_every_stored_event_reaches_its_procedure_once(server: Server) -> None:
    put_procedure(server, "station_connected", "local args = ...\ngarrison.audit('hi', args.id)")
    agents = [server.enrolled_agent() for _ in range(4)]
    for agent in agents[:2]:
        assert agent.enroll(server.first_key).status_code == 200  # connects again
    wait_processed(server, last_seq(server))
    expected = sorted([str(a.agent_id) for a in agents] + [str(a.agent_id) for a in agents[:2]])
    assert sorted(audit_targets(server, "procedure.hi")) == expected


def test_two_servers_on_one_database_run_each_procedure_once(server_factory: ServerFactory) -> None:
    one: Server = server_factory()
    two: Server = server_factory()
    put_procedure(one, "station_connected", "local args = ...\ngarrison.audit('hi', args.id)")
    agents = []
    for i in range(8):
        node = one if i % 2 else two
        agent = node.agent()
        assert agent.enroll(one.first_key).status_code == 200
        agents.append(agent)
    wait_processed(one, last_seq(one))
    assert sorted(audit_targets(one, "procedure.hi")) == sorted(str(a.agent_id) for a in agents)


def test_a_restarted_server_resumes_where_the_cursor_stopped(server_factory: ServerFactory) -> None:
    first: Server = server_factory()
    put_procedure(first, "station_connected", "local args = ...\ngarrison.audit('hi', args.id)")
    before = first.enrolled_agent()
    wait_processed(first, last_seq(first))
    first.client.__exit__(None, None, None)  # stop it: its consumers finish and stop
    restarted: Server = server_factory()
    after = restarted.enrolled_agent()
    wait_for(lambda: len(audit_targets(restarted, "procedure.hi")) == 2, what="procedure ran")
    wait_processed(restarted, last_seq(restarted))
    assert audit_targets(restarted, "procedure.hi") == [str(before.agent_id), str(after.agent_id)]
