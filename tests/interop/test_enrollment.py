"""Enrollment as the Armadito agent does it, and the station identity it establishes."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.conftest import Server
from tests.interop.armadito import STATE, WireAgent, new_uuid

NewAgent = Callable[..., WireAgent]


def stations_by_uuid(server: Server) -> dict[str, int]:
    page = server.admin.get("/stations").json()
    return {s["uuid"]: s["id"] for s in page["items"]}


def test_enrollment_reply_is_a_json_object_with_agent_id_and_scheduler_id(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent = new_agent(enrolled=False)
    response = agent.enroll(armadito.first_key)
    assert response.status_code == 200
    # The agent checks the reply starts with "{" before parsing it.
    assert response.content.startswith(b"{")
    assert response.headers["content-type"] == "application/json"
    data = json.loads(response.content)
    assert isinstance(data["agent_id"], int)
    assert data["agent_id"] > 0
    assert isinstance(data["scheduler_id"], int)
    assert stations_by_uuid(armadito) == {agent.uuid: data["agent_id"]}


def test_two_agents_get_distinct_agent_ids(armadito: Server, new_agent: NewAgent) -> None:
    first, second = new_agent(), new_agent()
    assert first.agent_id != second.agent_id
    assert stations_by_uuid(armadito) == {first.uuid: first.agent_id, second.uuid: second.agent_id}


def test_re_enrollment_of_a_known_uuid_keeps_its_agent_id(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent = new_agent()
    original = agent.agent_id
    other = new_agent()
    # A removed local state: the agent enrolls again with agent_id 0.
    agent.agent_id = 0
    response = agent.enroll(armadito.admin.new_key(uses=1))
    assert response.status_code == 200, response.text
    assert response.json()["agent_id"] == original
    assert agent.agent_id == original
    assert stations_by_uuid(armadito) == {agent.uuid: original, other.uuid: other.agent_id}


def test_lowercase_uuid_is_stored_upper_case_and_found_again_upper_case(
    armadito: Server, new_agent: NewAgent
) -> None:
    upper = new_uuid()
    agent = new_agent(enrolled=False, uuid=upper.lower())
    assert agent.enroll(armadito.first_key).status_code == 200
    sid = agent.agent_id
    assert stations_by_uuid(armadito) == {upper: sid}
    # Later the same machine reports its DMI uuid upper-case: same station.
    agent.uuid = upper
    assert agent.state().status_code == 200
    assert armadito.admin.get(f"/stations/{sid}/state").json()["global_status"] == "up-to-date"
    agent.agent_id = 0
    assert agent.enroll(armadito.first_key).json()["agent_id"] == sid
    # And lowercase again, mixed with the stored agent_id.
    agent.uuid = upper.lower()
    assert agent.state(STATE.replace("up-to-date", "late", 1)).status_code == 200
    assert armadito.admin.get(f"/stations/{sid}/state").json()["global_status"] == "late"
    assert stations_by_uuid(armadito) == {upper: sid}


def test_enrollment_records_what_the_envelope_says(armadito: Server, new_agent: NewAgent) -> None:
    agent = new_agent()
    station = armadito.admin.get(f"/stations/{agent.agent_id}").json()
    assert {
        k: station[k]
        for k in ("uuid", "agent_version", "antivirus_name", "antivirus_version", "os_name")
    } == {
        "uuid": agent.uuid,
        "agent_version": "0.10.1",
        "antivirus_name": "Armadito",
        "antivirus_version": "0.12.8",
        "os_name": "linux",
    }
    assert station["agent_kind"] == "armadito"


def test_enrollment_uses_one_use_of_the_key(armadito: Server, new_agent: NewAgent) -> None:
    key = armadito.admin.new_key(uses=2)
    new_agent(enrolled=False).enroll(key)
    # Listed by prefix: the key is stored hashed.
    keys = {k["prefix"]: k for k in armadito.admin.get("/enrollment-keys").json()}
    mine = keys[key[:5]]
    assert (mine["uses"], mine["used"], mine["status"]) == (2, 1, "active")
