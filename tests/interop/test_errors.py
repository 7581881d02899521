"""Every error an Armadito agent can get is a JSON object with ``error`` and ``message``.

The agent parses every error body as JSON (a non-JSON body crashes it) and shows ``message``
on enrollment errors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import update

from garrison.server.enrollment.models import EnrollmentKey
from garrison.server.enrollment.service import key_digest
from tests.conftest import Server, ServerFactory
from tests.interop.armadito import (
    BASIC,
    RUNJOBS_SUCCESS,
    SCAN,
    STATE,
    WireAgent,
    create_job,
    replace_once,
    with_job,
)
from tests.support import assert_json_error


@dataclass
class World:
    server: Server
    agent: WireAgent  # enrolled
    other: WireAgent  # enrolled too
    stranger: WireAgent  # never enrolled


Case = Callable[[World], httpx.Response]


def enroll_with(key: str) -> Case:
    return lambda w: w.stranger.enroll(key)


def revoked(w: World) -> httpx.Response:
    key = w.server.admin.new_key()
    assert w.server.admin.delete(f"/enrollment-keys/{key}").status_code == 200
    return w.stranger.enroll(key)


def expired(w: World) -> httpx.Response:
    key = w.server.admin.new_key()
    with w.server.db.transaction() as session:
        session.execute(
            update(EnrollmentKey)
            .where(EnrollmentKey.key_hash == key_digest(key))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    return w.stranger.enroll(key)


def exhausted(w: World) -> httpx.Response:
    key = w.server.admin.new_key(uses=1)
    assert WireAgent(w.server.client).enroll(key).status_code == 200
    return w.stranger.enroll(key)


def no_key(w: World) -> httpx.Response:
    return w.stranger.post("agents", "Enrollment", "{}")


def without_credentials(w: World) -> httpx.Response:
    w.agent.credentials = None
    return w.agent.state()


def wrong_credentials(w: World) -> httpx.Response:
    w.agent.credentials = (BASIC[0], "wrong password")
    return w.agent.state()


def raw(body: str) -> Case:
    return lambda w: w.agent.post_raw("states", body)


def bad_uuid(w: World) -> httpx.Response:
    w.agent.uuid = "not-a-uuid"
    return w.agent.state()


def unenrolled(w: World) -> httpx.Response:
    return w.stranger.state()


def anothers_agent_id(w: World) -> httpx.Response:
    w.agent.agent_id = w.other.agent_id
    return w.agent.state()


def getjobs(query: str) -> Case:
    return lambda w: w.agent.getjobs(query)


def runjob_unknown(w: World) -> httpx.Response:
    return w.agent.runjob(999_999)


def runjob_of_another(w: World) -> httpx.Response:
    job_id = create_job(w.server.admin, [w.other.agent_id])
    return w.agent.runjob(job_id)


def runjob_cancelled(w: World) -> httpx.Response:
    job_id = create_job(w.server.admin, [w.agent.agent_id])
    assert w.server.admin.post(f"/jobs/{job_id}/cancel").status_code == 200
    return w.agent.runjob(job_id)


def runjob_huge_id(w: World) -> httpx.Response:
    return w.agent.post("jobs", "Runjobs", with_job(RUNJOBS_SUCCESS, 10**20))


def scan_with(old: str, new: str) -> Case:
    def case(w: World) -> httpx.Response:
        job_id = create_job(w.server.admin, [w.agent.agent_id])
        return w.agent.scan(replace_once(with_job(SCAN, job_id), old, new))

    return case


def post_obj(name: str, task: str, obj: str) -> Case:
    return lambda w: w.agent.post(name, task, obj)


def path(method: str, url: str) -> Case:
    return lambda w: w.agent.request(method, w.agent.base + url)


CASES = [
    # Enrollment (public): the agent shows `message`.
    pytest.param(
        enroll_with("not-a-key"),
        403,
        "invalid enrollment key format (expected XXXXX-XXXXX-XXXXX-XXXXX-XXXXX)",
        id="enroll-bad-key-format",
    ),
    pytest.param(
        enroll_with("AAAAA-AAAAA-AAAAA-AAAAA-AAAAA"),
        403,
        "unknown enrollment key",
        id="enroll-unknown-key",
    ),
    pytest.param(revoked, 403, "enrollment key has been revoked", id="enroll-revoked-key"),
    pytest.param(expired, 403, "enrollment key has expired", id="enroll-expired-key"),
    pytest.param(exhausted, 403, "enrollment key has no uses left", id="enroll-exhausted-key"),
    pytest.param(no_key, 422, "task.obj.key: is required", id="enroll-without-key"),
    # Authentication.
    pytest.param(without_credentials, 401, "authentication required", id="no-credentials"),
    pytest.param(wrong_credentials, 401, "wrong agent credentials", id="wrong-credentials"),
    # Bodies.
    pytest.param(raw("{not json"), 400, None, id="body-not-json"),
    pytest.param(raw(""), 400, "request body is empty; a JSON body is required", id="empty-body"),
    pytest.param(
        raw("[]"), 422, "request body must be a JSON object (the task envelope)", id="body-array"
    ),
    pytest.param(bad_uuid, 422, "uuid: is not a uuid: 'not-a-uuid'", id="bad-uuid"),
    pytest.param(
        unenrolled,
        404,
        "unknown agent uuid; run the Enrollment task first",
        id="not-enrolled",
    ),
    pytest.param(
        anothers_agent_id, 403, "agent_id does not match this uuid", id="agent-id-of-another"
    ),
    # Getjobs.
    pytest.param(
        getjobs("agent_id=999999&antivirus=Armadito&agent_id=999999"),
        404,
        "unknown agent 999999; enroll first",
        id="getjobs-unknown-agent",
    ),
    pytest.param(
        getjobs("antivirus=Armadito"), 422, "agent_id is required", id="getjobs-no-agent-id"
    ),
    pytest.param(
        getjobs("agent_id=abc&antivirus=Armadito"),
        422,
        "agent_id: must be an integer, got 'abc'",
        id="getjobs-agent-id-not-a-number",
    ),
    # Runjobs.
    pytest.param(runjob_unknown, 404, "no job 999999", id="runjobs-unknown-job"),
    pytest.param(runjob_of_another, 403, None, id="runjobs-job-of-another-agent"),
    pytest.param(runjob_cancelled, 409, None, id="runjobs-cancelled-job"),
    pytest.param(runjob_huge_id, 422, None, id="runjobs-job-id-out-of-range"),
    # Scan.
    pytest.param(
        scan_with('"progress":100', '"progress":150'),
        422,
        "progress must be between 0 and 100",
        id="scan-progress-out-of-range",
    ),
    pytest.param(
        scan_with('"duration":"PT0H0M0S"', '"duration":"soon"'),
        422,
        "task.obj.duration: is not a duration: 'soon'",
        id="scan-duration-unreadable",
    ),
    pytest.param(
        scan_with('"scanned_count":42', '"scanned_count":"many"'),
        422,
        "task.obj.scanned_count: must be an integer, got 'many'",
        id="scan-count-not-a-number",
    ),
    pytest.param(
        scan_with('"duration":"PT0H0M0S"', '"duration":"PT0H1.2.3M0S"'),
        422,
        None,
        id="scan-duration-malformed-number",
    ),
    pytest.param(
        scan_with('"scanned_count":42', '"scanned_count":100000000000000000000'),
        422,
        None,
        id="scan-count-out-of-range",
    ),
    # Other tasks.
    pytest.param(
        post_obj("alerts", "Alerts", '{"alerts":{}}'),
        422,
        "task.obj.alerts must be an array",
        id="alerts-not-an-array",
    ),
    pytest.param(
        post_obj("avconfigs", "AVConfig", '{"attr":"x"}'),
        422,
        "task.obj must be an array of {attr, value}",
        id="avconfig-not-an-array",
    ),
    pytest.param(
        post_obj("states", "State", '{"dbinfo":[]}'),
        422,
        "task.obj.dbinfo must be a JSON object",
        id="state-dbinfo-not-an-object",
    ),
    # Routing.
    pytest.param(path("GET", "/api/nothing"), 404, "no such path: /api/nothing", id="no-path"),
    pytest.param(
        path("PUT", "/api/jobs"), 405, "method PUT is not allowed on /api/jobs", id="bad-method"
    ),
]


@pytest.mark.parametrize(("case", "status", "message"), CASES)
def test_agent_errors_are_json_objects(
    armadito: Server,
    new_agent: Callable[..., WireAgent],
    case: Case,
    status: int,
    message: str | None,
) -> None:
    world = World(armadito, new_agent(), new_agent(), new_agent(enrolled=False))
    response = case(world)
    body = assert_json_error(response, status)
    if message is not None:
        assert body["message"] == message
        assert body["error"] == message
    if status == 401:
        assert response.headers["www-authenticate"] == 'Basic realm="Garrison"'


def test_body_over_the_limit_is_a_json_413(server_factory: ServerFactory) -> None:
    server = server_factory(
        agent_basic_user=BASIC[0], agent_basic_password=BASIC[1], max_body_bytes=2048
    )
    agent = WireAgent(server.client)
    assert agent.enroll(server.first_key).status_code == 200
    padded = replace_once(STATE, '"avdetails":[]', '"avdetails":["' + "x" * 4096 + '"]')
    body = assert_json_error(agent.state(padded), 413, "payload_too_large")
    assert body["message"] == "request body is larger than the limit of 2048 bytes"
