"""Sensor policy through the admin API (default, per group, effective per station, audited),
delivered to Garrison agents only (GET /api/sensor-policy, with a version ETag), and the
per-station sensor status read from the latest sensor_health event.  Both backends."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from garrison.common.sensor_policy import version
from garrison.server.sensors.models import SensorPolicy
from tests.conftest import Server
from tests.support import ArmaditoAgent, assert_json_error


@dataclass
class GarrisonAgent(ArmaditoAgent):
    """The wire of the Garrison agent: Armadito's, plus the header that says so."""

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "X-Garrison-Agent": "test"}

    def policy(self, etag: str | None = None) -> httpx.Response:
        headers = self.headers()
        if etag is not None:
            headers["If-None-Match"] = etag
        return self.client.get(self.url("sensor-policy"), headers=headers)

    def health(self, data: dict[str, Any]) -> httpx.Response:
        item = {"id": uuid.uuid4().hex, "type": "sensor_health", "data": data}
        return self.client.post(
            self.url("events"), content=json.dumps([item]), headers=self.headers()
        )


def garrison_agent(server: Server) -> GarrisonAgent:
    agent = GarrisonAgent(server.client)
    response = agent.enroll(server.first_key)
    assert response.status_code == 200, response.text
    return agent


def group_with(server: Server, name: str, *station_ids: int) -> None:
    assert server.admin.post("/groups", {"name": name}).status_code == 201
    response = server.admin.post(f"/groups/{name}/stations", {"add": list(station_ids)})
    assert response.status_code == 200, response.text


def test_no_policy_at_first(server: Server) -> None:
    response = server.admin.get("/sensor-policy")
    assert response.status_code == 200
    assert response.json()["settings"] == {}
    assert response.json()["version"] == version({})


def test_default_and_group_policies_make_the_effective_one(server: Server) -> None:
    agent = garrison_agent(server)
    group_with(server, "web", agent.agent_id)
    group_with(server, "db", agent.agent_id)
    put = server.admin.put(
        "/sensor-policy", {"settings": {"ports": True, "burst": 50, "redact": ["*PIN*"]}}
    )
    assert put.status_code == 200, put.text
    assert put.json()["scope"] == "default"
    assert put.json()["updated_by"] == "admin"
    assert (
        server.admin.put(
            "/groups/web/sensor-policy", {"settings": {"ports": False, "burst": 5}}
        ).json()["group"]
        == "web"
    )
    db = server.admin.put("/groups/db/sensor-policy", {"settings": {"burst": 9}, "priority": 1})
    assert db.status_code == 200
    assert db.json()["priority"] == 1
    assert server.admin.get("/groups/db/sensor-policy").json()["settings"] == {"burst": 9}

    found = server.admin.get(f"/stations/{agent.agent_id}/sensor-policy").json()
    assert found["settings"] == {"ports": False, "burst": 9, "redact": ["*PIN*"]}
    assert found["sources"] == {"ports": "group:web", "burst": "group:db", "redact": "default"}
    assert found["layers"] == ["group:db", "group:web", "default"]
    assert found["version"] == version(found["settings"])

    # What the agent gets is the same, with its version as ETag.
    answer = agent.policy()
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"version": found["version"], "settings": found["settings"]}
    assert answer.headers["etag"] == f'"{found["version"]}"'

    # Dropping a group's policy: its keys fall back.
    assert server.admin.delete("/groups/web/sensor-policy").status_code == 204
    found = server.admin.get(f"/stations/{agent.agent_id}/sensor-policy").json()
    assert found["settings"]["ports"] is True
    assert found["sources"]["ports"] == "default"
    response = server.admin.delete("/groups/web/sensor-policy")
    assert_json_error(response, 404, "not_found")

    actions = [e["action"] for e in server.admin.get("/audit").json()]
    assert actions.count("sensor_policy.set") == 3
    assert "sensor_policy.unset" in actions


def test_an_unchanged_policy_is_a_304_without_body(server: Server) -> None:
    agent = garrison_agent(server)
    server.admin.put("/sensor-policy", {"settings": {"file": False}})
    first = agent.policy()
    etag = first.headers["etag"]
    again = agent.policy(etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    # One of several known versions (the agent also names one it refused).
    assert agent.policy(f'"0000", {etag}').status_code == 304
    server.admin.put("/sensor-policy", {"settings": {"file": True}})
    changed = agent.policy(etag)
    assert changed.status_code == 200
    assert changed.json()["settings"] == {"file": True}


def test_an_armadito_agent_never_sees_the_policy(server: Server) -> None:
    server.admin.put("/sensor-policy", {"settings": {"file": False}})
    armadito = server.enrolled_agent()
    response = armadito.client.get(armadito.url("sensor-policy"), headers=armadito.headers())
    assert_json_error(response, 404, "not_found")
    assert "file" not in response.text
    # Without a token: refused before anything is read.
    anonymous = server.client.get("/api/sensor-policy")
    assert anonymous.status_code in (401, 403)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"settings": {"prots": False}}, "settings.prots"),
        ({"settings": {"ports": "off"}}, "settings.ports"),
        ({"settings": {"rate_per_second": 0}}, "settings.rate_per_second"),
        ({"settings": {"file_paths": ["relative"]}}, "settings.file_paths"),
        ({"settings": {"exclude_hashes": ["zz"]}}, "settings.exclude_hashes"),
        ({"settings": {"os_log_journalctl": "/bin/sh"}}, "settings.os_log_journalctl"),
        ({"settings": {}, "extra": 1}, "extra"),
        ({}, "settings"),
    ],
)
def test_a_broken_policy_is_422_naming_the_field(
    server: Server, body: dict[str, Any], field: str
) -> None:
    response = server.admin.put("/sensor-policy", body)
    assert_json_error(response, 422)
    assert field in response.text, response.text
    assert server.admin.get("/sensor-policy").json()["settings"] == {}


def test_group_policy_errors(server: Server) -> None:
    assert_json_error(
        server.admin.put("/groups/nope/sensor-policy", {"settings": {}}), 404, "not_found"
    )
    assert_json_error(server.admin.get("/groups/nope/sensor-policy"), 404, "not_found")
    assert_json_error(server.admin.get("/stations/999999/sensor-policy"), 404, "not_found")
    group_with(server, "g")
    response = server.admin.put("/groups/g/sensor-policy", {"settings": {}, "priority": 10**7})
    assert_json_error(response, 422)
    assert "priority" in response.text


def test_a_deleted_group_takes_its_policy_along(server: Server) -> None:
    agent = garrison_agent(server)
    group_with(server, "gone", agent.agent_id)
    server.admin.put("/groups/gone/sensor-policy", {"settings": {"ports": False}})
    assert server.admin.delete("/groups/gone").status_code == 204
    with server.db.reading() as session:
        assert session.query(SensorPolicy).count() == 0
    assert server.admin.get(f"/stations/{agent.agent_id}/sensor-policy").json()["settings"] == {}


def _health(states: list[tuple[str, str, str]], **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"time": time.time(), "started_at": time.time() - 5, **extra}
    for index, (name, state, reason) in enumerate(states):
        data[f"sensor_{index}"] = name
        data[f"state_{index}"] = state
        if reason:
            data[f"reason_{index}"] = reason
        data[f"produced_{index}"] = 10 + index
        data[f"dropped_{index}"] = 3
        data[f"dropped_rate_limit_{index}"] = 1
        data[f"dropped_queue_{index}"] = 1
        data[f"dropped_spool_{index}"] = 1
        data[f"overflows_{index}"] = index
    data["count"] = len(states)
    return data


def test_station_sensor_status_is_its_latest_sensor_health(server: Server) -> None:
    agent = garrison_agent(server)
    other = garrison_agent(server)
    empty = server.admin.get(f"/stations/{agent.agent_id}/sensors")
    assert empty.status_code == 200
    assert empty.json()["sensors"] == []
    assert empty.json()["reported_at"] is None

    assert agent.health(_health([("process", "running", "")])).status_code == 200
    latest = _health(
        [("process", "running", ""), ("ports", "disabled", "turned off by the server")],
        policy_version="abc",
        policy_error="policy x refused: ports: must be true or false",
    )
    assert agent.health(latest).status_code == 200
    assert other.health(_health([("process", "failed", "needs root")])).status_code == 200

    found = server.admin.get(f"/stations/{agent.agent_id}/sensors").json()
    assert found["policy_version"] == "abc"
    assert found["policy_error"].startswith("policy x refused")
    assert found["reported_at"] is not None
    assert [(s["sensor"], s["state"], s["reason"]) for s in found["sensors"]] == [
        ("process", "running", ""),
        ("ports", "disabled", "turned off by the server"),
    ]
    ports = found["sensors"][1]
    assert ports["produced"] == 11
    assert ports["overflows"] == 1
    assert (ports["dropped_rate_limit"], ports["dropped_queue"], ports["dropped_spool"]) == (
        1,
        1,
        1,
    )
    theirs = server.admin.get(f"/stations/{other.agent_id}/sensors").json()
    assert theirs["sensors"][0]["reason"] == "needs root"
    assert_json_error(server.admin.get("/stations/999999/sensors"), 404, "not_found")
