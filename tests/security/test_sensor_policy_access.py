"""Who may see and change the sensor policy, and who may fetch it.

A viewer and an operator read every policy and every station's sensor status but change
nothing (admin only, like the configuration agents fetch); without a token nothing is
answered.  On the agent side a station only ever gets its own effective policy, and an
Armadito station none at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Server
from tests.server.test_sensor_policy_api import GarrisonAgent, garrison_agent, group_with
from tests.support import Admin, assert_json_error


def _views(server: Server, station_id: int) -> dict[str, Any]:
    return {
        path: server.admin.get(path).json()
        for path in (
            "/sensor-policy",
            "/groups/g/sensor-policy",
            f"/stations/{station_id}/sensor-policy",
        )
    }


def _writes(who: Admin) -> dict[str, Any]:
    return {
        "set default": who.put("/sensor-policy", {"settings": {"process": False}}),
        "set group": who.put("/groups/g/sensor-policy", {"settings": {"process": False}}),
        "unset group": who.delete("/groups/g/sensor-policy"),
    }


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_an_admin_changes_the_policy(server: Server, role: str) -> None:
    agent = garrison_agent(server)
    group_with(server, "g", agent.agent_id)
    server.admin.put("/groups/g/sensor-policy", {"settings": {"ports": False}})
    before = _views(server, agent.agent_id)
    who = server.admin.as_role(f"{role}-user", role)
    for path in before:
        assert who.get(path).status_code == 200, path
    assert who.get(f"/stations/{agent.agent_id}/sensors").status_code == 200
    for what, response in _writes(who).items():
        assert response.status_code == 403, what
        assert_json_error(response, 403, "forbidden")
    assert _views(server, agent.agent_id) == before


def test_nothing_without_a_token(server: Server) -> None:
    agent = garrison_agent(server)
    group_with(server, "g")
    for method, path in (
        ("GET", "/sensor-policy"),
        ("PUT", "/sensor-policy"),
        ("GET", "/groups/g/sensor-policy"),
        ("PUT", "/groups/g/sensor-policy"),
        ("DELETE", "/groups/g/sensor-policy"),
        ("GET", f"/stations/{agent.agent_id}/sensor-policy"),
        ("GET", f"/stations/{agent.agent_id}/sensors"),
    ):
        response = server.client.request(method, f"/admin/v1{path}", json={"settings": {}})
        assert_json_error(response, 401, "not_authenticated")


def test_a_station_gets_only_its_own_policy(server: Server) -> None:
    mine, theirs = garrison_agent(server), garrison_agent(server)
    group_with(server, "theirs", theirs.agent_id)
    server.admin.put("/groups/theirs/sensor-policy", {"settings": {"exclude_hashes": ["a" * 64]}})
    # The endpoint takes no station: naming another in the query changes nothing.
    response = mine.client.get(
        mine.url(f"sensor-policy?agent_id={theirs.agent_id}"), headers=mine.headers()
    )
    assert response.status_code == 200
    assert response.json()["settings"] == {}
    assert theirs.policy().json()["settings"] == {"exclude_hashes": ["a" * 64]}


def test_a_revoked_token_gets_nothing(server: Server) -> None:
    agent = garrison_agent(server)
    assert server.admin.delete(f"/stations/{agent.agent_id}").status_code == 204
    response = GarrisonAgent(server.client, token=agent.token).policy()
    assert_json_error(response, 401)
