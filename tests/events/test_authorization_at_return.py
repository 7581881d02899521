"""station_authorization_in_progress also runs when a known station comes back after being
marked disconnected (issue 13, defect f), as Dr.Web runs it at every authorization of a known
station: with the arguments of a re-enrollment, and its answer decides."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.conftest import Server
from tests.events.helpers import (
    events,
    one_event,
    put_procedure,
    set_last_seen,
    station_ids,
)
from tests.support import ArmaditoAgent, assert_json_error, wait_for

PROCEDURE = "station_authorization_in_progress"
OFFLINE_AFTER = 30


def away_and_back(server: Server, agent: ArmaditoAgent) -> None:
    """The station goes silent past the timeout (DISCONNECTED), then checks in again; the
    node writes that check-in (its return)."""
    ctx: Any = server.client.app.state.ctx  # type: ignore[attr-defined]
    assert server.admin.patch("/settings", {"offline_after_seconds": OFFLINE_AFTER}).status_code
    server.flush_presence()
    set_last_seen(server, agent.agent_id, dt.timedelta(seconds=OFFLINE_AFTER + 15))
    ctx.presence.sweep(server.db)
    assert events(server, type="DISCONNECTED", station_id=agent.agent_id)
    assert agent.getjobs().status_code == 200  # served: the procedure answers at the flush
    server.flush_presence()


def station(server: Server, agent: ArmaditoAgent) -> dict[str, Any]:
    response = server.admin.get(f"/stations/{agent.agent_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_return_runs_the_procedure_with_the_enrollment_arguments(server: Server) -> None:
    put_procedure(
        server,
        PROCEDURE,
        "local args = ...\n"
        "garrison.audit('auth', args.id, table.concat({tostring(args.connected), "
        "args.current_address, args.current_name, args.last_address, args.new_name, "
        "args.new_address, type(args.last_time), type(args.last_server)}, ','))\n",
    )
    agent = server.enrolled_agent()
    before = station(server, agent)["last_seen"]
    away_and_back(server, agent)
    (in_progress,) = events(server, type=PROCEDURE, station_id=agent.agent_id)
    data = in_progress["data"]
    assert data["id"] == agent.agent_id
    assert data["connected"] is False
    assert data["new_address"] == "testclient"
    assert data["last_address"] == "testclient"
    # The last connection's time, not the return's.
    last = dt.datetime.fromisoformat(data["last_time"].replace("Z", "+00:00"))
    ago = (dt.datetime.now(dt.UTC) - last).total_seconds()
    assert OFFLINE_AFTER + 14 <= ago <= OFFLINE_AFTER + 60, (ago, before)
    entry = server.admin.get("/audit", action="procedure.auth").json()[0]
    assert entry["details"]["detail"] == (
        f"false,,{agent.uuid},testclient,{agent.uuid},testclient,string,string"
    )
    # nil: connected again, after the procedure.
    connected = events(server, type="station_connected", station_id=agent.agent_id)
    assert len(connected) == 2
    assert connected[0]["seq"] > in_progress["seq"]
    assert station(server, agent)["online"] is True
    assert station(server, agent)["denied_at"] is None


def test_a_check_in_that_is_no_return_runs_nothing(server: Server) -> None:
    put_procedure(server, PROCEDURE, "return 'deny'")
    agent = server.enrolled_agent()
    for _ in range(3):
        assert agent.getjobs().status_code == 200
        server.flush_presence()
    assert events(server, type=PROCEDURE) == []
    assert agent.getjobs().status_code == 200


def test_deny_at_return_refuses_the_station_until_an_admin_allows_it(server: Server) -> None:
    put_procedure(server, PROCEDURE, "return 'deny'")
    agent = server.enrolled_agent()
    away_and_back(server, agent)
    failed = one_event(server, "station_authorization_failed")
    assert failed["station_id"] == agent.agent_id
    assert failed["data"]["reason"] == (
        "authorization denied by the station_authorization_in_progress procedure"
    )
    assert failed["seq"] > one_event(server, PROCEDURE)["seq"]
    shown = station(server, agent)
    assert shown["denied_at"] is not None
    assert shown["online"] is False
    assert len(events(server, type="station_connected", station_id=agent.agent_id)) == 1

    body = assert_json_error(agent.getjobs(), 403)
    assert body["code"] == "station_denied"
    assert f"/admin/v1/stations/{agent.agent_id}/allow" in body["message"]
    # Refused requests are no return: the procedure does not run again and again.
    server.flush_presence()
    assert len(events(server, type=PROCEDURE)) == 1

    # A re-enrollment does not escape the denial, even when the procedure answers nil.
    put_procedure(server, PROCEDURE, "return nil")
    again = agent.enroll(server.first_key)
    assert assert_json_error(again, 403)["error"].startswith("this station is denied")
    assert assert_json_error(agent.getjobs(), 403)["code"] == "station_denied"

    allowed = server.admin.post(f"/stations/{agent.agent_id}/allow")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["denied_at"] is None
    assert agent.getjobs().status_code == 200
    assert agent.state().status_code == 200
    # Allowed, it comes back through the procedure like any return (nil: connected); the
    # refused re-enrollment ran it too.
    server.flush_presence()
    assert len(events(server, type=PROCEDURE)) == 3
    assert station(server, agent)["online"] is True
    entry = server.admin.get("/audit", action="station.allow").json()[0]
    assert entry["target"] == str(agent.agent_id)
    assert entry["details"]["was_denied"] is True


def test_force_at_re_enrollment_lifts_a_denial(server: Server) -> None:
    put_procedure(server, PROCEDURE, "return 'deny'")
    agent = server.enrolled_agent()
    away_and_back(server, agent)
    assert assert_json_error(agent.getjobs(), 403)["code"] == "station_denied"
    put_procedure(server, PROCEDURE, "return 'force'")
    assert agent.enroll(server.first_key).status_code == 200
    assert station(server, agent)["denied_at"] is None
    assert agent.getjobs().status_code == 200


def test_newbie_at_return_deletes_the_station(server: Server) -> None:
    put_procedure(server, PROCEDURE, "return 'newbie'")
    agent = server.enrolled_agent()
    old_id = agent.agent_id
    away_and_back(server, agent)
    deleted = one_event(server, "station_deleted")
    assert deleted["data"] == {"login": "procedure:authorization", "id": old_id}
    assert station_ids(server) == []
    # Its agent must enroll again, and is a new station.
    assert assert_json_error(agent.getjobs(), 401)["code"] == "not_authenticated"
    put_procedure(server, PROCEDURE, "return nil")
    assert agent.enroll(server.first_key).status_code == 200
    assert agent.agent_id != old_id
    assert agent.getjobs().status_code == 200


def test_a_procedure_may_allow_a_denied_station(server: Server) -> None:
    """garrison.allow_station(id), here from the procedure of the denial's own event."""
    put_procedure(server, PROCEDURE, "return 'deny'")
    put_procedure(
        server,
        "station_authorization_failed",
        "local args = ...\n"
        "if args.id then garrison.audit('allowed', args.id, "
        "tostring(garrison.allow_station(args.id))) end",
    )
    agent = server.enrolled_agent()
    away_and_back(server, agent)
    wait_for(lambda: station(server, agent)["denied_at"] is None, what="the station allowed")
    entry = server.admin.get("/audit", action="procedure.allowed").json()[0]
    assert entry["details"]["detail"] == "true"
    (allow,) = server.admin.get("/audit", action="station.allow").json()
    assert allow["actor"] == "procedure:station_authorization_failed"
    assert agent.getjobs().status_code == 200


def test_allow_is_for_admins_and_needs_a_station(server: Server) -> None:
    agent = server.enrolled_agent()
    assert_json_error(server.admin.post("/stations/999999/allow"), 404)
    response = server.admin.post(f"/stations/{agent.agent_id}/allow")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == agent.agent_id
    created = server.admin.post(
        "/users", {"username": "op-allow", "password": "operator-pass-123", "role": "operator"}
    )
    assert created.status_code == 201, created.text
    login = server.client.post(
        "/admin/v1/auth/login", json={"username": "op-allow", "password": "operator-pass-123"}
    )
    token = login.json()["token"]
    refused = server.client.post(
        f"/admin/v1/stations/{agent.agent_id}/allow", headers={"Authorization": f"Bearer {token}"}
    )
    assert assert_json_error(refused, 403)["code"] == "forbidden"
