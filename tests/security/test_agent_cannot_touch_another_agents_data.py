"""An agent can touch only its own data: Garrison is secure by default.

Agent B holds a valid credential of its own (bearer token, or per-station Basic with its uuid
or agent id as user and its token as password).  Whatever B writes in the envelope or the
query string, it must not report on, read or download agent A's jobs, nor write A's state.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import Server, ServerFactory
from tests.security.checks import (
    EICAR,
    SCAN_OBJ,
    alert_total,
    create_scan_job,
    queued_job_ids,
    scan_total,
    target_of,
    target_statuses,
    with_credentials,
)
from tests.support import ArmaditoAgent, assert_json_error

CREDENTIAL_MODES = ["bearer", "basic-uuid", "basic-id"]


@pytest.fixture(params=CREDENTIAL_MODES)
def b(request: pytest.FixtureRequest, agent_b: ArmaditoAgent) -> ArmaditoAgent:
    """Agent B, authenticating with its own station credential in each accepted form."""
    return with_credentials(agent_b, request.param)


def test_b_credentials_work_for_b(server: Server, b: ArmaditoAgent) -> None:
    """Control: the credential form under test really authenticates B."""
    assert b.state().status_code == 200
    assert b.getjobs().json() == {"jobs": []}
    assert b.scan(SCAN_OBJ).status_code == 200
    assert scan_total(server, station_id=b.agent_id) == 1


def test_b_can_report_its_own_alerts(server: Server, b: ArmaditoAgent) -> None:
    """Control for the alert refusals below: B's own alerts are accepted."""
    job = create_scan_job(server, b.agent_id)
    response = b.alerts([EICAR], job_id=job)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    assert alert_total(server, station_id=b.agent_id) == 1


def test_runjobs_for_a_job_of_a_is_refused(
    server: Server, agent_a: ArmaditoAgent, b: ArmaditoAgent
) -> None:
    job = create_scan_job(server, agent_a.agent_id)

    response = b.runjob(job, code=0)
    body = assert_json_error(response, 403)
    assert body.get("field") == "job_id"
    assert target_statuses(server, job) == {agent_a.agent_id: "queued"}

    # Also once A has downloaded it: B can neither complete nor fail it.
    assert [j["job_id"] for j in agent_a.getjobs().json()["jobs"]] == [job]
    assert_json_error(b.runjob(job, code=1, message="forged failure"), 403)
    target = target_of(server, job, agent_a.agent_id)
    assert target["status"] == "downloaded"
    assert target["code"] is None
    assert target["message"] is None

    # Control: A itself can report it.
    assert agent_a.runjob(job).status_code == 200
    assert target_statuses(server, job) == {agent_a.agent_id: "successful"}


def test_scan_for_a_job_of_a_is_refused(
    server: Server, agent_a: ArmaditoAgent, b: ArmaditoAgent
) -> None:
    job = create_scan_job(server, agent_a.agent_id)

    assert_json_error(b.scan({**SCAN_OBJ, "job_id": job}), 403)

    assert scan_total(server) == 0
    assert target_statuses(server, job) == {agent_a.agent_id: "queued"}


def test_alerts_for_a_job_of_a_are_refused(
    server: Server, agent_a: ArmaditoAgent, b: ArmaditoAgent
) -> None:
    job = create_scan_job(server, agent_a.agent_id)

    assert_json_error(b.alerts([EICAR], job_id=job), 403)

    assert alert_total(server) == 0
    assert target_statuses(server, job) == {agent_a.agent_id: "queued"}


def test_report_on_a_shared_job_touches_only_own_part(
    server: Server, agent_a: ArmaditoAgent, b: ArmaditoAgent
) -> None:
    job = create_scan_job(server, agent_a.agent_id, b.agent_id)
    b.getjobs()

    assert b.runjob(job, code=1, message="disk error").status_code == 200

    assert target_statuses(server, job) == {agent_a.agent_id: "queued", b.agent_id: "failed"}


def test_envelope_naming_a_uuid_is_refused(
    server: Server, agent_a: ArmaditoAgent, b: ArmaditoAgent
) -> None:
    """B's credential with A's uuid in the envelope: refused, nothing written for A."""
    as_a = dataclasses.replace(b, uuid=agent_a.uuid)
    job = create_scan_job(server, agent_a.agent_id)

    assert assert_json_error(as_a.state(), 403).get("field") == "uuid"
    assert_json_error(as_a.runjob(job), 403)
    assert_json_error(as_a.scan({**SCAN_OBJ, "job_id": job}), 403)
    assert_json_error(as_a.alerts([EICAR]), 403)
    assert_json_error(as_a.alerts([EICAR], job_id=job), 403)

    # Nothing was written for A (nor for B).
    assert server.admin.get(f"/stations/{agent_a.agent_id}/state").status_code == 404
    assert server.admin.get(f"/stations/{b.agent_id}/state").status_code == 404
    assert target_statuses(server, job) == {agent_a.agent_id: "queued"}
    assert scan_total(server) == 0
    assert alert_total(server) == 0


def test_envelope_naming_a_agent_id_is_refused(
    server: Server, agent_a: ArmaditoAgent, b: ArmaditoAgent
) -> None:
    """B's credential and B's uuid, but A's agent_id in the envelope: refused."""
    as_a = dataclasses.replace(b, agent_id=agent_a.agent_id)
    job = create_scan_job(server, agent_a.agent_id)

    assert assert_json_error(as_a.state(), 403).get("field") == "agent_id"
    assert_json_error(as_a.runjob(job), 403)
    assert_json_error(as_a.scan({**SCAN_OBJ, "job_id": job}), 403)
    assert_json_error(as_a.alerts([EICAR]), 403)

    assert server.admin.get(f"/stations/{agent_a.agent_id}/state").status_code == 404
    assert server.admin.get(f"/stations/{b.agent_id}/state").status_code == 404
    assert target_statuses(server, job) == {agent_a.agent_id: "queued"}
    assert scan_total(server) == 0
    assert alert_total(server) == 0


def test_getjobs_for_a_agent_id_is_refused(
    server: Server, agent_a: ArmaditoAgent, b: ArmaditoAgent
) -> None:
    job = create_scan_job(server, agent_a.agent_id)

    response = dataclasses.replace(b, agent_id=agent_a.agent_id).getjobs()
    assert assert_json_error(response, 403).get("field") == "agent_id"

    # A's job stays queued, and A still gets it.
    assert queued_job_ids(server, agent_a.agent_id) == {job}
    assert target_statuses(server, job) == {agent_a.agent_id: "queued"}
    assert [j["job_id"] for j in agent_a.getjobs().json()["jobs"]] == [job]


def test_getjobs_with_two_different_agent_ids_is_refused(
    server: Server, agent_a: ArmaditoAgent, b: ArmaditoAgent
) -> None:
    """``agent_id`` appears twice on the wire: B cannot slip A's id in as the second one."""
    job = create_scan_job(server, agent_a.agent_id)

    response = b.client.get(
        f"/api/jobs?agent_id={b.agent_id}&antivirus=Armadito&agent_id={agent_a.agent_id}",
        headers=b.headers(),
    )
    # Refused as a malformed request before identity is even considered.
    body = assert_json_error(response, 400, "malformed_request")
    assert body.get("field") == "agent_id"
    assert queued_job_ids(server, agent_a.agent_id) == {job}


def test_station_basic_user_must_match_the_token(
    server: Server, agent_a: ArmaditoAgent, agent_b: ArmaditoAgent
) -> None:
    """Per-station Basic: A's uuid or id as user with B's token is not a credential at all."""
    assert agent_b.token
    for user in (agent_a.uuid, str(agent_a.agent_id)):
        forged = dataclasses.replace(agent_a, token=None, basic=(user, agent_b.token))
        assert_json_error(forged.state(), 401)
        assert_json_error(forged.getjobs(), 401)
    assert server.admin.get(f"/stations/{agent_a.agent_id}/state").status_code == 404


# -- fleet-wide (shared) Basic credentials ------------------------------------------------

FLEET = ("armadito-fleet", "fleet-password-123")


@pytest.fixture
def shared(server_factory: ServerFactory) -> Server:
    return server_factory(agent_basic_user=FLEET[0], agent_basic_password=FLEET[1])


def test_shared_basic_agent_id_must_match_uuid(shared: Server) -> None:
    a = shared.enrolled_agent(basic=FLEET)
    b = shared.enrolled_agent(basic=FLEET)
    assert a.token is None
    assert b.token is None
    job = create_scan_job(shared, a.agent_id)

    # Control: shared credentials with a consistent envelope work.
    assert b.state().status_code == 200

    as_a = dataclasses.replace(b, agent_id=a.agent_id)
    assert assert_json_error(as_a.state(), 403).get("field") == "agent_id"
    assert_json_error(as_a.runjob(job), 403)
    assert_json_error(as_a.scan({**SCAN_OBJ, "job_id": job}), 403)
    assert_json_error(as_a.alerts([EICAR], job_id=job), 403)
    # B's own envelope, A's job: refused too.
    assert_json_error(b.runjob(job), 403)
    assert_json_error(b.alerts([EICAR], job_id=job), 403)

    assert shared.admin.get(f"/stations/{a.agent_id}/state").status_code == 404
    assert target_statuses(shared, job) == {a.agent_id: "queued"}
    assert scan_total(shared) == 0
    assert alert_total(shared) == 0


def test_shared_basic_unknown_uuid_is_not_a_station(shared: Server) -> None:
    stranger = shared.agent(basic=FLEET)
    assert_json_error(stranger.state(), 404)
    assert shared.admin.get("/stations").json()["total"] == 0
