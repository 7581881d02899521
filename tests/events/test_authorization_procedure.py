"""station_authorization_in_progress runs during re-enrollment and its answer decides, as
the Dr.Web seed says: nil the default, 'deny', 'force', 'newbie'."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from tests.conftest import Server, ServerFactory
from tests.events.helpers import (
    GarrisonAgent,
    audit_targets,
    events,
    garrison_agent,
    one_event,
    other_machine,
    procedure_errors,
    put_procedure,
    set_last_seen,
    station_ids,
)
from tests.support import assert_json_error

PROCEDURE = "station_authorization_in_progress"
CLONE = "10.9.8.7"


def same_uuid_elsewhere(server: Server, agent: GarrisonAgent, address: str = CLONE) -> Any:
    """A second machine with the same DMI uuid (a cloned VM), enrolling from ``address``."""
    clone = GarrisonAgent(other_machine(server, address), uuid=agent.uuid)
    return clone, clone.enroll(server.first_key)


def token_works(server: Server, token: str) -> bool:
    response = server.client.get("/api/jobs", headers={"Authorization": f"Bearer {token}"})
    status: int = response.status_code
    return status == 200


def test_default_re_enrollment_from_the_same_address_works(server: Server) -> None:
    agent = garrison_agent(server)
    old_token = agent.token
    again = agent.enroll(server.first_key)
    assert again.status_code == 200, again.text
    assert again.json()["agent_id"] == agent.agent_id
    assert agent.token != old_token
    assert token_works(server, agent.token or "")
    assert not token_works(server, old_token or "")
    # The only failure is the old token's request, not the re-enrollment.
    (failed,) = events(server, type="station_authorization_failed")
    assert failed["data"]["reason"] == "invalid agent token; enroll again"


def test_by_default_a_second_machine_is_refused_while_the_first_is_connected(
    server: Server,
) -> None:
    agent = garrison_agent(server)
    _, response = same_uuid_elsewhere(server, agent)
    body = assert_json_error(response, 403)
    reason = (
        "a station with this uuid is connected from testclient; "
        "a procedure answering 'force' allows this"
    )
    assert body["error"] == reason
    failed = one_event(server, "station_authorization_failed")
    assert failed["station_id"] == agent.agent_id
    assert failed["data"] == {
        "id": agent.agent_id,
        "address": CLONE,
        "station": agent.uuid,
        "reason": reason,
        "type": "station",
        "compsid": agent.uuid,
    }
    in_progress = one_event(server, PROCEDURE)
    assert in_progress["data"]["connected"] is True
    assert in_progress["data"]["new_address"] == CLONE
    assert in_progress["data"]["current_address"] == "testclient"
    # The connected station is untouched.
    assert token_works(server, agent.token or "")
    assert station_ids(server) == [agent.agent_id]


def test_by_default_a_second_machine_may_take_over_an_offline_station(server: Server) -> None:
    assert server.admin.patch("/settings", {"offline_after_seconds": 30}).status_code == 200
    agent = garrison_agent(server)
    server.flush_presence()
    set_last_seen(server, agent.agent_id, dt.timedelta(minutes=5))
    _, response = same_uuid_elsewhere(server, agent)
    assert response.status_code == 200, response.text
    assert response.json()["agent_id"] == agent.agent_id
    assert one_event(server, PROCEDURE)["data"]["connected"] is False
    assert events(server, type="station_authorization_failed") == []


def test_the_procedure_gets_the_seeds_arguments(server: Server) -> None:
    put_procedure(
        server,
        PROCEDURE,
        "local args = ...\n"
        "garrison.audit('auth', args.id, table.concat({tostring(args.connected), "
        "args.current_address, args.current_name, args.last_address, args.new_name, "
        "args.new_address, type(args.last_time), type(args.last_server)}, ','))\n",
    )
    agent = garrison_agent(server, hostname="pc-one")
    assert agent.enroll(server.first_key).status_code == 200
    assert audit_targets(server, "procedure.auth") == [str(agent.agent_id)]
    entry = server.admin.get("/audit", action="procedure.auth").json()[0]
    assert entry["details"]["detail"] == "true,testclient,pc-one,testclient,pc-one,testclient," + (
        "string,string"
    )


def test_deny_blocks_the_station_and_emits_authorization_failed(server: Server) -> None:
    agent = garrison_agent(server)
    put_procedure(server, PROCEDURE, "local args = ...\nreturn 'deny'")
    response = agent.enroll(server.first_key)
    body = assert_json_error(response, 403)
    reason = "authorization denied by the station_authorization_in_progress procedure"
    assert body["error"] == reason
    failed = one_event(server, "station_authorization_failed")
    assert failed["station_id"] == agent.agent_id
    assert failed["data"]["reason"] == reason
    assert failed["data"]["id"] == agent.agent_id
    assert failed["seq"] > one_event(server, PROCEDURE)["seq"]
    # Nothing changed: one station, still connected once, and its token still works.
    assert station_ids(server) == [agent.agent_id]
    assert len(events(server, type="station_connected")) == 1
    assert token_works(server, agent.token or "")
    # A new machine (an unknown uuid) is not the procedure's business.
    assert garrison_agent(server).agent_id != agent.agent_id


def test_a_conditional_deny(server: Server) -> None:
    put_procedure(
        server,
        PROCEDURE,
        "local args = ...\nif args.new_address ~= args.last_address then return 'deny' end",
    )
    assert server.admin.patch("/settings", {"offline_after_seconds": 30}).status_code == 200
    agent = garrison_agent(server)
    assert agent.enroll(server.first_key).status_code == 200  # same address: allowed
    server.flush_presence()
    set_last_seen(server, agent.agent_id, dt.timedelta(minutes=5))  # offline
    _, response = same_uuid_elsewhere(server, agent)
    assert_json_error(response, 403)
    assert len(events(server, type="station_authorization_failed")) == 1


def test_force_lets_the_second_machine_in_and_disconnects_the_first(server: Server) -> None:
    put_procedure(server, PROCEDURE, "local args = ...\nif args.connected then return 'force' end")
    agent = garrison_agent(server)
    clone, response = same_uuid_elsewhere(server, agent)
    assert response.status_code == 200, response.text
    assert response.json()["agent_id"] == agent.agent_id
    assert token_works(server, clone.token or "")
    assert not token_works(server, agent.token or "")  # the other station is cut off
    station = server.admin.get(f"/stations/{agent.agent_id}").json()
    assert station["address"] == CLONE
    # Only the cut-off station's request failed, not the enrollment.
    (failed,) = events(server, type="station_authorization_failed")
    assert failed["data"]["reason"] == "invalid agent token; enroll again"
    assert len(events(server, type="station_connected")) == 2


def test_newbie_resets_the_station_to_a_new_one(
    server: Server, request: pytest.FixtureRequest
) -> None:
    agent = garrison_agent(server)
    old_id, old_token = agent.agent_id, agent.token
    put_procedure(server, PROCEDURE, "return 'newbie'")
    response = agent.enroll(server.first_key)
    assert response.status_code == 200, response.text
    new_id = response.json()["agent_id"]
    assert not token_works(server, old_token or "")
    assert token_works(server, agent.token or "")
    deleted = one_event(server, "station_deleted")
    assert deleted["data"] == {"login": "procedure:authorization", "id": old_id}
    created = events(server, type="station_created")
    assert len(created) == 2
    assert created[0]["seq"] > deleted["seq"]
    assert created[0]["data"]["id"] == new_id
    assert station_ids(server) == [new_id]
    assert new_id != old_id
    assert_json_error(server.admin.get(f"/stations/{old_id}"), 404)


def test_a_wrong_return_type_is_recorded_and_the_default_applies(server: Server) -> None:
    agent = garrison_agent(server)
    for n, (source, shown) in enumerate(
        [("return 42", "42"), ("return 'maybe'", "'maybe'"), ("return {}", "{}")], start=1
    ):
        put_procedure(server, PROCEDURE, source)
        response = agent.enroll(server.first_key)
        assert response.status_code == 200, response.text
        assert response.json()["agent_id"] == agent.agent_id
        errors = procedure_errors(server, PROCEDURE)
        assert len(errors) == n
        assert errors[0]["error"] == (
            f"returned {shown}; expected nil, 'deny', 'force' or 'newbie'"
        )
        assert errors[0]["event_seq"] is None
    assert events(server, type="station_authorization_failed") == []


def test_a_runaway_authorization_procedure_does_not_hold_the_request(
    server_factory: ServerFactory,
) -> None:
    server: Server = server_factory(procedure_seconds=0.5)
    agent = garrison_agent(server)
    put_procedure(server, PROCEDURE, "while true do end")
    started = time.monotonic()
    response = agent.enroll(server.first_key)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert elapsed < 5, elapsed
    (error,) = procedure_errors(server, PROCEDURE)
    assert error["error"] == "cpu budget exceeded"
    # A failing procedure is the default answer, so a clone is still refused.
    _, clone = same_uuid_elsewhere(server, agent)
    assert_json_error(clone, 403)
