"""A station the authorization procedure denied when it came back is refused on every agent
endpoint, with the token cache off and on (issue 13, defect f): 403 ``station_denied``, on
the cached check-in path too, until an administrator allows it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import Server, token_cache_off_and_on
from tests.events.helpers import events, put_procedure, set_last_seen
from tests.security.checks import reports
from tests.support import ArmaditoAgent, assert_json_error

token_cache_seconds = token_cache_off_and_on()
PROCEDURE = "station_authorization_in_progress"


def deny_at_return(server: Server, agent: ArmaditoAgent) -> None:
    ctx: Any = server.client.app.state.ctx  # type: ignore[attr-defined]
    put_procedure(server, PROCEDURE, "return 'deny'")
    assert server.admin.patch("/settings", {"offline_after_seconds": 30}).status_code == 200
    server.flush_presence()
    set_last_seen(server, agent.agent_id, dt.timedelta(seconds=45))
    ctx.presence.sweep(server.db)
    assert agent.getjobs().json() == {"jobs": []}  # the return, answered from the cache
    server.flush_presence()
    assert server.admin.get(f"/stations/{agent.agent_id}").json()["denied_at"] is not None


def assert_denied(response: httpx.Response, what: str) -> None:
    body = assert_json_error(response, 403)
    assert body.get("code") == "station_denied", (what, body)


def every_request(server: Server, agent: ArmaditoAgent) -> dict[str, httpx.Response]:
    headers = agent.headers()
    return {
        "Getjobs": agent.getjobs(),
        "Getjobs long-poll": server.client.get(
            f"/api/jobs?agent_id={agent.agent_id}&wait=1", headers=headers
        ),
        "GET avconfigs": server.client.get("/api/avconfigs", headers=headers),
        "GET schedulers": server.client.get("/api/schedulers", headers=headers),
        **reports(server, agent),
    }


def test_a_denied_station_is_refused_everywhere_until_allowed(server: Server) -> None:
    agent = server.enrolled_agent()
    assert agent.getjobs().status_code == 200  # cached now, when the cache is on
    deny_at_return(server, agent)
    assert agent.token
    per_station_basic = dataclasses.replace(agent, token=None, basic=(agent.uuid, agent.token))
    for who in (agent, per_station_basic):
        for what, response in every_request(server, who).items():
            assert_denied(response, what)
    # The procedure ran once: refused requests are no return.
    server.flush_presence()
    assert len(events(server, type=PROCEDURE)) == 1

    put_procedure(server, PROCEDURE, "return nil")
    assert server.admin.post(f"/stations/{agent.agent_id}/allow").status_code == 200
    for what, response in every_request(server, agent).items():
        # Served again (Runjobs names no job of this station: 404, its own business).
        assert response.status_code not in (401, 403), (what, response.text)


def test_a_denied_station_is_refused_with_the_shared_basic_credentials(
    server_factory: Callable[..., Server],
) -> None:
    server = server_factory(agent_basic_user="fleet", agent_basic_password="fleet-password")
    agent = server.enrolled_agent()
    deny_at_return(server, agent)
    shared = dataclasses.replace(agent, token=None, basic=("fleet", "fleet-password"))
    assert_denied(shared.getjobs(), "Getjobs")
    assert_denied(shared.state(), "State")


def test_a_node_that_still_trusts_a_denied_token_does_not_bring_it_back(
    server_factory: Callable[..., Server],
) -> None:
    """Two nodes on one database.  The second cached the token before the first denied the
    station: its check-ins may be answered from its cache for the token cache time, but they
    do not make the station return (no second procedure run) and its reports are refused."""
    first = server_factory(token_cache_seconds=120.0)
    second = server_factory(token_cache_seconds=120.0)
    agent = first.enrolled_agent()
    on_second = dataclasses.replace(agent, client=second.client)
    assert on_second.getjobs().json() == {"jobs": []}
    deny_at_return(first, agent)
    assert on_second.getjobs().json() == {"jobs": []}  # the second node's cache
    second.flush_presence()
    assert len(events(first, type=PROCEDURE)) == 1
    assert first.admin.get(f"/stations/{agent.agent_id}").json()["online"] is False
    assert_denied(on_second.state(), "State on the second node")
