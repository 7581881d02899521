"""Every agent endpoint but enrollment needs a credential: Garrison is secure by default.

A request with none gets 401 with ``WWW-Authenticate: Basic realm=…`` (the Armadito agent
sends its Basic credentials only after that challenge) and a JSON body (it parses every error
body as JSON).  A wrong, revoked or malformed credential gets 401 too, and is never
downgraded to "no credential" even when legacy unauthenticated agents are allowed.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re

import httpx
import pytest

from garrison.server.settings import Settings
from tests.conftest import Server, ServerFactory, token_cache_off_and_on
from tests.security.checks import EICAR, SCAN_OBJ, station_total
from tests.support import ArmaditoAgent, assert_json_error

# Every check here must hold with the token cache off and on (a real node caches tokens).
token_cache_seconds = token_cache_off_and_on()

CHALLENGE = re.compile(r'^Basic realm="[^"]+"')


def all_agent_requests(agent: ArmaditoAgent) -> dict[str, httpx.Response]:
    """One request of each authenticated agent endpoint, with the agent's credentials."""
    client = agent.client
    return {
        "Getjobs": agent.getjobs(),
        "Runjobs": agent.runjob(1),
        "Scan": agent.scan(SCAN_OBJ),
        "Alerts": agent.alerts([EICAR]),
        "State": agent.state(),
        "AVConfig": agent.avconfig([("on-access:enabled", "1")]),
        "Scheduler": agent.scheduler([("scheduler:task:Getjobs:freq", "* * * * *")]),
        "GET avconfigs": client.get("/api/avconfigs", headers=agent.headers()),
        "GET schedulers": client.get("/api/schedulers", headers=agent.headers()),
    }


def assert_all_401(agent: ArmaditoAgent) -> None:
    """Every authenticated endpoint refuses the agent's credentials, with the challenge."""
    for task, response in all_agent_requests(agent).items():
        assert_json_error(response, 401, "not_authenticated")
        header = response.headers.get("www-authenticate", "")
        assert CHALLENGE.match(header), (task, header)


def assert_nothing_written(server: Server, agent: ArmaditoAgent) -> None:
    if agent.agent_id:
        assert server.admin.get(f"/stations/{agent.agent_id}/state").status_code == 404
    assert server.admin.get("/alerts").json()["total"] == 0
    assert server.admin.get("/scans").json()["total"] == 0


def test_no_credentials_get_a_basic_challenge(server: Server, agent_a: ArmaditoAgent) -> None:
    anonymous = dataclasses.replace(agent_a, token=None, basic=None)
    assert_all_401(anonymous)
    assert_nothing_written(server, agent_a)


@pytest.mark.parametrize(
    "path", ["//api/jobs", "/api/jobs/", "//api/jobs/", "//api/states", "/api/states/"]
)
def test_challenge_survives_path_quirks(server: Server, path: str) -> None:
    """``//api/x`` and ``/api/x/`` (a trailing slash in the agent's server URL) are agent API
    paths too: they must carry the Basic challenge, not the admin API's Bearer."""
    # An absolute URL: httpx would read "//api/..." alone as a host name.
    url = f"http://testserver{path}"
    if "states" in path:
        response = server.client.post(url, content=b"{}")
    else:
        response = server.client.get(url, params={"agent_id": 1})
    assert_json_error(response, 401)
    assert CHALLENGE.match(response.headers.get("www-authenticate", "")), path


def test_realm_is_configurable(server_factory: ServerFactory) -> None:
    server: Server = server_factory(agent_basic_realm="Acme endpoints")
    response = server.agent().getjobs()
    assert_json_error(response, 401)
    assert response.headers["www-authenticate"] == 'Basic realm="Acme endpoints"'


def test_wrong_bearer_token_is_refused(server: Server, agent_a: ArmaditoAgent) -> None:
    token = agent_a.token
    assert token
    for forged in ("gst_" + "A" * 43, token + "x", token[:-1], token.upper(), token[4:]):
        assert_all_401(dataclasses.replace(agent_a, token=forged))
    assert_nothing_written(server, agent_a)
    # Control: the real token works.
    assert agent_a.state().status_code == 200


def test_admin_token_is_not_an_agent_token(server: Server, agent_a: ArmaditoAgent) -> None:
    assert_all_401(dataclasses.replace(agent_a, token=server.admin.token))
    assert_nothing_written(server, agent_a)


def test_unsupported_scheme_is_refused(server: Server, agent_a: ArmaditoAgent) -> None:
    for authorization in (
        f"Digest {agent_a.token}",
        f"Token {agent_a.token}",
        f"{agent_a.token}",
        "Bearer",
        "Bearer ",
    ):
        response = server.client.get(
            f"/api/jobs?agent_id={agent_a.agent_id}", headers={"Authorization": authorization}
        )
        assert_json_error(response, 401)


@pytest.mark.parametrize("cache_seconds", [0, 60])
def test_token_of_a_deleted_station_is_refused(server: Server, cache_seconds: float) -> None:
    # The token cache, when on, must forget a deleted station at once.
    server.ctx.agent_auth.cache.ttl = cache_seconds
    agent = server.enrolled_agent()
    assert agent.state().status_code == 200  # caches the token when the cache is on

    deleted = server.admin.delete(f"/stations/{agent.agent_id}")
    assert deleted.status_code == 204, deleted.text

    assert_all_401(agent)
    assert station_total(server) == 0
    assert server.admin.get("/states").json() == []


@pytest.mark.parametrize("cache_seconds", [0, 60])
def test_reenrollment_revokes_the_old_token(server: Server, cache_seconds: float) -> None:
    server.ctx.agent_auth.cache.ttl = cache_seconds
    agent = server.enrolled_agent()
    old = dataclasses.replace(agent)
    assert old.getjobs().status_code == 200  # caches the old token when the cache is on

    again = agent.enroll(server.first_key)
    assert again.status_code == 200, again.text
    assert again.json()["agent_id"] == old.agent_id
    assert agent.token != old.token

    assert_all_401(old)
    # Nor as a per-station Basic password.
    assert old.token
    assert_json_error(
        dataclasses.replace(old, token=None, basic=(old.uuid, old.token)).state(), 401
    )
    assert server.admin.get(f"/stations/{agent.agent_id}/state").status_code == 404
    # The new token works.
    assert agent.state().status_code == 200


@pytest.mark.parametrize(
    "value",
    [
        "Basic",
        "Basic ",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b":").decode(),
        "Basic " + base64.b64encode(b"user:").decode(),
    ],
)
def test_malformed_basic_is_refused(server: Server, agent_a: ArmaditoAgent, value: str) -> None:
    for response in (
        server.client.get(
            f"/api/jobs?agent_id={agent_a.agent_id}", headers={"Authorization": value}
        ),
        server.client.post(
            "/api/states",
            content=json.dumps(agent_a.envelope("State", {})),
            headers={"Authorization": value, "Content-Type": "application/json"},
        ),
    ):
        assert_json_error(response, 401, "not_authenticated")
    assert_nothing_written(server, agent_a)


FLEET = ("armadito-fleet", "fleet-password-123")


@pytest.fixture
def shared(server_factory: ServerFactory) -> Server:
    return server_factory(agent_basic_user=FLEET[0], agent_basic_password=FLEET[1])


def test_wrong_shared_basic_password_is_refused(shared: Server) -> None:
    agent = shared.enrolled_agent(basic=FLEET)
    assert agent.getjobs().status_code == 200  # control: the right pair works

    for user, password in (
        (FLEET[0], "wrong-password"),
        (FLEET[0], FLEET[1] + "x"),
        (FLEET[0], ""),
        ("someone-else", FLEET[1]),
        (FLEET[0].upper(), FLEET[1]),
    ):
        assert_all_401(dataclasses.replace(agent, basic=(user, password)))
    assert_nothing_written(shared, agent)


def test_shared_basic_is_off_unless_configured(server: Server, agent_a: ArmaditoAgent) -> None:
    """With no fleet credentials configured, no user/password pair is a shared credential."""
    for pair in (("", ""), ("admin", "admin"), ("armadito", "armadito"), (":", ":")):
        assert_all_401(dataclasses.replace(agent_a, token=None, basic=pair))
    assert_nothing_written(server, agent_a)


def test_unauthenticated_agents_are_refused_by_default(server: Server) -> None:
    assert Settings.model_fields["allow_unauthenticated_agents"].default is False
    assert server.settings.allow_unauthenticated_agents is False
    legacy = server.enrolled_agent()
    legacy = dataclasses.replace(legacy, token=None)
    assert_all_401(legacy)
    assert_nothing_written(server, legacy)


def test_allow_unauthenticated_agents_lets_legacy_requests_in(
    server_factory: ServerFactory,
) -> None:
    server: Server = server_factory(allow_unauthenticated_agents=True)
    legacy = server.enrolled_agent()
    legacy = dataclasses.replace(legacy, token=None)

    assert legacy.state().status_code == 200
    assert legacy.getjobs().json() == {"jobs": []}
    assert server.admin.get(f"/stations/{legacy.agent_id}/state").status_code == 200


def test_allow_unauthenticated_agents_still_checks_what_is_sent(
    server_factory: ServerFactory,
) -> None:
    """A credential that is present but wrong is refused, not treated as "no credential";
    and an anonymous request still cannot mix another station's agent_id with its uuid."""
    server: Server = server_factory(allow_unauthenticated_agents=True)
    a = server.enrolled_agent()
    b = server.enrolled_agent()

    assert_all_401(dataclasses.replace(a, token="gst_" + "A" * 43))
    assert_all_401(dataclasses.replace(a, token=None, basic=("nobody", "nothing")))

    anonymous_b = dataclasses.replace(b, token=None, agent_id=a.agent_id)
    assert_json_error(anonymous_b.state(), 403)
    stranger = server.agent()
    assert_json_error(stranger.state(), 404)
    assert server.admin.get("/states").json() == []
