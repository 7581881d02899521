"""A refused agent request raises ``station_authorization_failed`` (issue 13, defect f), with
the reason and the address and never the credential, at most once per client address per
``auth_failure_report_seconds``: a flood cannot flood the event log."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from garrison.server.stations.failures import FailureLimiter
from garrison.server.stations.models import Station
from garrison.server.store.base import utcnow
from tests.conftest import Server
from tests.events.helpers import events, other_machine
from tests.support import assert_json_error

BAD_TOKEN = "gst_not-a-token-this-server-issued"


def failures(server: Server) -> list[dict[str, Any]]:
    """Oldest first."""
    return list(reversed(events(server, type="station_authorization_failed")))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_bad_bearer_token_is_reported_without_the_token(server: Server) -> None:
    response = server.client.get("/api/jobs", headers={"Authorization": f"Bearer {BAD_TOKEN}"})
    assert assert_json_error(response, 401)["code"] == "not_authenticated"
    (failed,) = failures(server)
    assert failed["station_id"] is None
    assert failed["data"] == {
        "address": "testclient",
        "reason": "invalid agent token; enroll again",
        "type": "station",
        "suppressed": 0,
    }
    assert BAD_TOKEN not in json.dumps(failed)
    assert "not-a-token" not in json.dumps(failed)


def test_bad_basic_credentials_are_reported(server_factory: Callable[..., Server]) -> None:
    server = server_factory(auth_failure_report_seconds=0)  # every failure reported
    agent = server.enrolled_agent()
    secret = "wrong-password-never-logged"
    refused = {
        "wrong password": basic(agent.uuid, secret),
        "malformed": "Basic %%%not-base64",
        "no colon": "Basic " + base64.b64encode(b"just-a-user").decode(),
        "unsupported scheme": "Digest whatever",
    }
    for what, header in refused.items():
        response = agent.client.get("/api/jobs", headers={"Authorization": header})
        assert response.status_code == 401, (what, response.text)
    reasons = [f["data"]["reason"] for f in failures(server)]
    assert reasons == [
        "wrong agent credentials",
        "malformed Basic credentials",
        "malformed Basic credentials",
        "unsupported authorization scheme 'digest'",
    ]
    assert secret not in json.dumps(failures(server))


def test_a_request_without_credentials_is_not_a_failure(server: Server) -> None:
    """The Armadito agent's first request: it answers the 401's Basic challenge."""
    response = server.client.get("/api/jobs?agent_id=1")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert failures(server) == []


def test_a_flood_is_reported_once_per_address_then_with_its_count(server: Server) -> None:
    ctx: Any = server.client.app.state.ctx  # type: ignore[attr-defined]
    now = [1000.0]
    ctx.agent_auth.failures = FailureLimiter(60.0, clock=lambda: now[0])
    bad = {"Authorization": f"Bearer {BAD_TOKEN}"}
    for _ in range(50):
        assert server.client.get("/api/jobs", headers=bad).status_code == 401
    elsewhere = other_machine(server, "10.1.2.3")
    for _ in range(5):
        assert elsewhere.post("/api/states", content=b"{}", headers=bad).status_code == 401
    assert [(f["data"]["address"], f["data"]["suppressed"]) for f in failures(server)] == [
        ("testclient", 0),
        ("10.1.2.3", 0),
    ]
    now[0] += 60.0  # the interval passed: the next failure is reported, with the count
    assert server.client.get("/api/jobs", headers=bad).status_code == 401
    assert failures(server)[-1]["data"]["suppressed"] == 49
    assert len(failures(server)) == 3


def test_a_denied_stations_requests_are_reported_with_the_station(
    server_factory: Callable[..., Server],
) -> None:
    server = server_factory(auth_failure_report_seconds=3600)
    agent = server.enrolled_agent()
    with server.db.transaction() as session:
        station = session.get(Station, agent.agent_id)
        assert station is not None
        station.denied_at = utcnow()
    for _ in range(3):
        assert assert_json_error(agent.getjobs(), 403)["code"] == "station_denied"
    (failed,) = failures(server)
    assert failed["station_id"] == agent.agent_id
    assert failed["data"]["id"] == agent.agent_id
    assert failed["data"]["compsid"] == agent.uuid
    assert failed["data"]["reason"].startswith("this station was denied")
