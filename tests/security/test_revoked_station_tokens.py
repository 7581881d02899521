"""A station's agent token stops working when the station goes (issue 13, defect a).

With the token cache on, as every node runs, the old token of a station that was deleted or
re-created by a ``'newbie'`` re-enrollment kept working: ``GET /api/jobs`` answered
``200 {"jobs":[]}`` and ``POST /api/states`` failed with a 500 (a foreign-key error).  It
must be 401 at once on the node that made the change; on other nodes a check-in answered
from the cache may pass for at most the token cache time (docs/operations.md), and a
report is refused at once, since it reads the station in its own transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import httpx

from tests.conftest import Server
from tests.events.helpers import put_procedure
from tests.security.checks import reports
from tests.support import assert_json_error, wait_for

CACHE_SECONDS = 120.0


def assert_not_authenticated(response: httpx.Response, what: str) -> None:
    body = assert_json_error(response, 401)
    assert body.get("code") == "not_authenticated", (what, body)


def test_newbie_reenrollment_revokes_the_old_stations_token_at_once(
    server_factory: Callable[..., Server],
) -> None:
    server = server_factory(token_cache_seconds=CACHE_SECONDS)
    agent = server.enrolled_agent()
    old = dataclasses.replace(agent)
    assert old.getjobs().json() == {"jobs": []}  # the token is cached now
    assert old.state().status_code == 200

    put_procedure(server, "station_authorization_in_progress", "return 'newbie'")
    again = agent.enroll(server.first_key)
    assert again.status_code == 200, again.text
    assert agent.agent_id != old.agent_id  # a new station; the old one is deleted

    assert_not_authenticated(old.getjobs(), "Getjobs")
    for task, response in reports(server, old).items():
        assert_not_authenticated(response, task)
    assert old.token
    basic = dataclasses.replace(old, token=None, basic=(old.uuid, old.token))
    assert_not_authenticated(basic.state(), "State with per-station Basic")
    # The new station's token works.
    assert agent.getjobs().json() == {"jobs": []}
    assert agent.state().status_code == 200


def test_a_station_deleted_on_another_node_is_refused_there_in_time(
    server_factory: Callable[..., Server],
) -> None:
    """Two nodes on one database: the second caches the token, the first deletes the
    station.  Reports to the second are 401 at once (never a 500); its cached check-in
    answer lasts no longer than the token cache time."""
    cache_seconds = 1.0
    first = server_factory(token_cache_seconds=cache_seconds)
    second = server_factory(token_cache_seconds=cache_seconds)
    agent = first.enrolled_agent()
    on_second = dataclasses.replace(agent, client=second.client)
    assert on_second.getjobs().json() == {"jobs": []}  # the second node caches the token

    deleted = first.admin.delete(f"/stations/{agent.agent_id}")
    assert deleted.status_code == 204, deleted.text

    assert_not_authenticated(agent.getjobs(), "Getjobs on the node that deleted")
    for task, response in reports(second, on_second).items():
        assert_not_authenticated(response, task)
    wait_for(
        lambda: on_second.getjobs().status_code == 401,
        timeout=cache_seconds + 5,
        what="the second node refuses the deleted station's check-in",
    )
    assert_not_authenticated(on_second.getjobs(), "Getjobs once the cache time is over")
