"""A station's location (issue 23): set by an administrator (PATCH /stations/{id}) or
reported by a Garrison agent from its configuration; ``station_geolocation_changed`` with
the seed's arguments when it changes, handed to its procedure; range and precision
checked, nothing half-applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from garrison.agent.config import AgentConfig, load, save
from tests.conftest import Server
from tests.events.helpers import audit_targets, events, garrison_agent, put_procedure
from tests.support import assert_json_error, sqlite_only, wait_for

EVENT = "station_geolocation_changed"
PARIS = {"latitude": 48.856613, "longitude": 2.352222}


def test_a_location_set_through_the_admin_api_is_handed_to_its_procedure(
    server: Server,
) -> None:
    """Done when: the admin API's location yields the event with the seed's arguments."""
    put_procedure(
        server,
        EVENT,
        "local args = ...\n"
        "garrison.audit('geo', args.id, table.concat({args.address, args.station, args.name, "
        "string.format('%.6f', args.latitude), string.format('%.6f', args.longitude)}, '|'))\n",
    )
    agent = garrison_agent(server, hostname="pc-paris")
    response = server.admin.patch(f"/stations/{agent.agent_id}", PARIS)
    assert response.status_code == 200, response.text
    assert (response.json()["latitude"], response.json()["longitude"]) == (48.856613, 2.352222)
    (event,) = events(server, type=EVENT)
    assert event["station_id"] == agent.agent_id
    assert event["data"] == {
        "id": agent.agent_id,
        "address": "testclient",
        "station": "pc-paris",
        "name": "pc-paris",
        **PARIS,
    }
    wait_for(lambda: audit_targets(server, "procedure.geo"), what="the procedure ran")
    (entry,) = server.admin.get("/audit", action="procedure.geo").json()
    assert entry["details"]["detail"] == "testclient|pc-paris|pc-paris|48.856613|2.352222"
    shown = server.admin.get(f"/stations/{agent.agent_id}").json()
    assert (shown["latitude"], shown["longitude"]) == (48.856613, 2.352222)
    (audited,) = server.admin.get("/audit", action="station.location").json()
    assert audited["details"] == {**PARIS, "changed": True}


def test_the_same_location_again_emits_nothing_and_clearing_emits_nothing(
    server: Server,
) -> None:
    agent = garrison_agent(server)
    assert server.admin.patch(f"/stations/{agent.agent_id}", PARIS).status_code == 200
    assert server.admin.patch(f"/stations/{agent.agent_id}", PARIS).status_code == 200
    assert len(events(server, type=EVENT)) == 1
    moved = {"latitude": -33.868820, "longitude": 151.209296}
    assert server.admin.patch(f"/stations/{agent.agent_id}", moved).status_code == 200
    assert [e["data"]["latitude"] for e in events(server, type=EVENT)] == [-33.86882, 48.856613]
    cleared = server.admin.patch(
        f"/stations/{agent.agent_id}", {"latitude": None, "longitude": None}
    )
    assert (cleared.json()["latitude"], cleared.json()["longitude"]) == (None, None)
    assert len(events(server, type=EVENT)) == 2


@sqlite_only
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"latitude": 90.000001, "longitude": 0}, "latitude"),
        ({"latitude": -91, "longitude": 0}, "latitude"),
        ({"latitude": 0, "longitude": 180.5}, "longitude"),
        ({"latitude": 48.8566131, "longitude": 2.352222}, "latitude"),  # 7 decimals
        ({"latitude": 48.856613, "longitude": 2.3522221}, "longitude"),
        ({"latitude": "48.856613", "longitude": 2.352222}, "latitude"),
        ({"latitude": True, "longitude": 2.352222}, "latitude"),
        ({"latitude": 48.856613}, "longitude"),
        ({"latitude": 48.856613, "longitude": None}, "longitude"),
    ],
)
def test_bad_coordinates_are_refused_and_nothing_is_applied(
    server: Server, body: dict[str, Any], field: str
) -> None:
    agent = garrison_agent(server)
    assert server.admin.patch(f"/stations/{agent.agent_id}", PARIS).status_code == 200
    refused = assert_json_error(server.admin.patch(f"/stations/{agent.agent_id}", body), 422)
    assert refused["field"] == field, refused
    shown = server.admin.get(f"/stations/{agent.agent_id}").json()
    assert (shown["latitude"], shown["longitude"]) == (48.856613, 2.352222)
    assert len(events(server, type=EVENT)) == 1


@sqlite_only
def test_patch_refuses_unknown_fields_stations_and_viewers(server: Server) -> None:
    agent = garrison_agent(server)
    assert_json_error(server.admin.patch(f"/stations/{agent.agent_id}", {"hostname": "x"}), 422)
    assert_json_error(server.admin.patch("/stations/999", PARIS), 404)
    viewer = server.admin.as_role("watcher", "viewer")
    assert_json_error(viewer.patch(f"/stations/{agent.agent_id}", PARIS), 403)
    assert events(server, type=EVENT) == []


def state_with_location(location: Any) -> dict[str, Any]:
    return {
        "dbinfo": {"global_status": "up-to-date", "global_update_timestamp": 1500000000},
        "avdetails": [],
        "location": location,
    }


def test_a_garrison_agent_reports_its_configured_location(server: Server) -> None:
    agent = garrison_agent(server, hostname="pc-agent")
    assert agent.state(state_with_location(PARIS)).status_code == 200
    assert agent.state(state_with_location(PARIS)).status_code == 200  # unchanged: no event
    (event,) = events(server, type=EVENT)
    assert event["data"]["latitude"] == 48.856613
    shown = server.admin.get(f"/stations/{agent.agent_id}").json()
    assert (shown["latitude"], shown["longitude"]) == (48.856613, 2.352222)
    bad = agent.state(state_with_location({"latitude": 100, "longitude": 0}))
    assert assert_json_error(bad, 422)["field"] == "task.obj.location.latitude"
    assert len(events(server, type=EVENT)) == 1


def test_the_agent_configuration_checks_its_location() -> None:
    config = AgentConfig.model_validate({"location": PARIS})
    assert config.location.place() == (48.856613, 2.352222)
    assert AgentConfig().location.place() is None
    for bad in ({"latitude": 95, "longitude": 0}, {"latitude": 1.0}, {"longitude": 1.1234567}):
        with pytest.raises(ValueError, match=r"latitude|longitude"):
            AgentConfig.model_validate({"location": bad})


def test_the_agent_configuration_saves_and_loads_its_location(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    save(path, AgentConfig())  # no location: nothing to write for it (TOML has no null)
    assert load(path).location.place() is None
    save(path, AgentConfig.model_validate({"location": PARIS}))
    assert "[location]" in path.read_text()
    assert load(path).location.place() == (48.856613, 2.352222)
