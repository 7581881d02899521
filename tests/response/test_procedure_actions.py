"""Lua procedures' live-response actions (issue 17): a ``threat_detected`` procedure
isolates, kills and collects through the real procedures consumer; the actions are the
admin use cases (audited as the procedure) and rate-limited across runs."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from garrison.server.jobs.models import Job
from tests.conftest import Server
from tests.events.helpers import last_seq, put_procedure, wait_processed
from tests.response.helpers import ResponseAgent, enroll

CONTAIN = """
local a = ...
garrison.isolate(a.id)
if a.pid then garrison.kill_process(a.id, {pid = a.pid, tree = true}) end
if a.object ~= '' then garrison.get_file(a.id, a.object) end
"""


def threat(agent: ResponseAgent, uid: str, pid: int, path: str) -> None:
    event = {
        "id": uid,
        "type": "threat_detected",
        "data": {"virus": "Test.Threat", "object": path, "pid": pid},
    }
    response = agent.client.post(
        agent.url("events"), content=json.dumps([event]), headers=agent.headers()
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1, response.text


def procedure_jobs(server: Server) -> list[tuple[str, dict[str, Any], str]]:
    with server.db.reading() as session:
        rows = session.execute(select(Job.type, Job.params, Job.created_by).order_by(Job.id))
        return [(t, p, who) for t, p, who in rows]


def test_threat_detected_isolates_kills_and_collects(server: Server) -> None:
    put_procedure(server, "threat_detected", CONTAIN)
    agent = enroll(server.client, server.first_key)
    threat(agent, "t-1", 4321, "/tmp/evil.bin")
    wait_processed(server, last_seq(server))
    made = procedure_jobs(server)
    assert [(t, p) for t, p, _ in made] == [
        ("IsolateNetwork", {}),
        ("KillProcess", {"pid": 4321, "tree": True}),
        ("GetFile", {"path": "/tmp/evil.bin"}),
    ]
    assert {who for _, _, who in made} == {"procedure:threat_detected"}
    fetched = {j["job_type"]: j for j in agent.jobs()}
    assert fetched["KillProcess"]["job_priority"] == "3"
    assert fetched["GetFile"]["obj"]["max_bytes"] > 0


def test_procedure_actions_are_rate_limited(server: Server) -> None:
    put_procedure(server, "threat_detected", "local a = ... garrison.kill_process(a.id, a.pid)")
    agent = enroll(server.client, server.first_key)
    for i in range(12):
        threat(agent, f"t-{i}", 1000 + i, "")
    wait_processed(server, last_seq(server))
    kills = [p for t, p, _ in procedure_jobs(server) if t == "KillProcess"]
    assert len(kills) == 10
    limited = server.admin.get("/audit", action="procedure.rate_limited").json()
    assert len(limited) == 2
    assert limited[0]["target"] == f"station {agent.agent_id}"


def test_a_procedure_starts_a_hunt(server: Server) -> None:
    source = """
local a = ...
garrison.start_hunt({type = 'FindFile', glob = 'evil*'}, {all = true}, 600)
"""
    put_procedure(server, "threat_detected", source)
    agent = enroll(server.client, server.first_key)
    threat(agent, "t-h", 7, "/tmp/evil.bin")
    wait_processed(server, last_seq(server))
    hunts = server.admin.get("/hunts").json()["items"]
    assert len(hunts) == 1
    assert hunts[0]["created_by"] == "procedure:threat_detected"
    assert hunts[0]["question"]["glob"] == "evil*"
    assert [j["job_type"] for j in agent.jobs()] == ["Hunt"]
