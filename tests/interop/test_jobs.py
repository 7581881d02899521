"""Getjobs and Runjobs: the job queue as an Armadito agent sees it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from tests.conftest import Server
from tests.interop.armadito import (
    END_TIME,
    JOBS_REPLY,
    START_TIME,
    WireAgent,
    create_job,
    failure,
    job_target,
    when,
    with_job,
)
from tests.support import assert_json_error

NewAgent = Callable[..., WireAgent]


def job_ids(response_jobs: list[dict[str, object]]) -> list[object]:
    return [j["job_id"] for j in response_jobs]


def test_getjobs_with_nothing_queued_is_an_empty_jobs_array(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent = new_agent()
    response = agent.getjobs()
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content != b""  # an empty 200 body crashes the agent
    assert json.loads(response.content) == {"jobs": []}


def test_scan_job_created_by_the_admin_api_arrives_as_armadito_expects(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent = new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id], priority=2, name="quick")
    response = agent.getjobs()
    assert response.status_code == 200
    assert response.json() == json.loads(with_job(JOBS_REPLY, job_id))


def test_scan_job_options_are_base64_too(armadito: Server, new_agent: NewAgent) -> None:
    agent = new_agent()
    job_id = create_job(
        armadito.admin,
        [agent.agent_id],
        priority=0,
        path="/home/user/Téléchargements",
        options="--recursive --max-size=10M",
        name="downloads",
        scanconfig_id=4,
    )
    (job,) = agent.getjobs().json()["jobs"]
    assert job == {
        "job_id": job_id,
        "job_type": "Scan",
        "job_priority": "0",
        "obj": {
            "scanconfig_id": 4,
            "scan_name": "downloads",
            "scan_path": base64.b64encode("/home/user/Téléchargements".encode()).decode(),
            "scan_options": "LS1yZWN1cnNpdmUgLS1tYXgtc2l6ZT0xME0=",
        },
    }
    assert base64.b64decode(job["obj"]["scan_options"]) == b"--recursive --max-size=10M"


def test_getjobs_returns_at_most_ten_by_default(armadito: Server, new_agent: NewAgent) -> None:
    agent = new_agent()
    created = [create_job(armadito.admin, [agent.agent_id], priority=1) for _ in range(12)]
    assert job_ids(agent.getjobs().json()["jobs"]) == created[:10]
    assert job_ids(agent.getjobs().json()["jobs"]) == created[10:]
    assert agent.getjobs().json() == {"jobs": []}


def test_getjobs_limit_is_a_setting(armadito: Server, new_agent: NewAgent) -> None:
    agent = new_agent()
    changed = armadito.admin.patch("/settings", {"getjobs_limit": 3})
    assert changed.status_code == 200, changed.text
    assert changed.json()["getjobs_limit"] == 3
    created = [create_job(armadito.admin, [agent.agent_id], priority=1) for _ in range(5)]
    assert job_ids(agent.getjobs().json()["jobs"]) == created[:3]
    assert job_ids(agent.getjobs().json()["jobs"]) == created[3:]
    for bad in (0, 101, "3"):
        response = armadito.admin.patch("/settings", {"getjobs_limit": bad})
        assert_json_error(response, 422)
    assert armadito.admin.get("/settings").json()["getjobs_limit"] == 3


def test_getjobs_orders_by_priority_then_age(armadito: Server, new_agent: NewAgent) -> None:
    agent = new_agent()
    other = new_agent()
    made = {}
    for name, priority in [
        ("low-1", 0),
        ("urgent-1", 3),
        ("medium", 1),
        ("urgent-2", 3),
        ("high", 2),
        ("low-2", 0),
    ]:
        made[name] = create_job(armadito.admin, [agent.agent_id, other.agent_id], priority)
    jobs = agent.getjobs().json()["jobs"]
    expected = ["urgent-1", "urgent-2", "high", "medium", "low-1", "low-2"]
    assert job_ids(jobs) == [made[n] for n in expected]
    assert [j["job_priority"] for j in jobs] == ["3", "3", "2", "1", "0", "0"]
    # The other station's copies are its own.
    assert job_ids(other.getjobs().json()["jobs"]) == [made[n] for n in expected]


def test_returned_jobs_become_downloaded_and_are_not_returned_again(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent, other = new_agent(), new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id, other.agent_id])
    target = job_target(armadito.admin, job_id, agent.agent_id)
    assert (target["status"], target["downloaded_at"]) == ("queued", None)
    assert job_ids(agent.getjobs().json()["jobs"]) == [job_id]
    target = job_target(armadito.admin, job_id, agent.agent_id)
    assert target["status"] == "downloaded"
    assert target["downloaded_at"] is not None
    assert job_target(armadito.admin, job_id, other.agent_id)["status"] == "queued"
    assert armadito.admin.get(f"/jobs/{job_id}").json()["status_counts"] == {
        "downloaded": 1,
        "queued": 1,
    }
    assert agent.getjobs().json() == {"jobs": []}


def test_a_job_is_cancelled_only_while_queued(armadito: Server, new_agent: NewAgent) -> None:
    agent = new_agent()
    queued = create_job(armadito.admin, [agent.agent_id])
    cancelled = armadito.admin.post(f"/jobs/{queued}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {"job_id": queued, "cancelled": 1}
    assert job_target(armadito.admin, queued, agent.agent_id)["status"] == "cancelled"
    assert agent.getjobs().json() == {"jobs": []}

    downloaded = create_job(armadito.admin, [agent.agent_id])
    assert job_ids(agent.getjobs().json()["jobs"]) == [downloaded]
    refused = armadito.admin.post(f"/jobs/{downloaded}/cancel")
    body = assert_json_error(refused, 409)
    assert "only queued jobs can be cancelled" in body["message"]
    assert job_target(armadito.admin, downloaded, agent.agent_id)["status"] == "downloaded"
    # A cancelled job cannot be reported on either.
    assert_json_error(agent.runjob(queued), 409)


def test_runjobs_success_marks_the_job_successful_with_its_times(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent = new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id])
    agent.getjobs()
    response = agent.runjob(job_id)
    assert response.status_code == 200, response.text
    target = job_target(armadito.admin, job_id, agent.agent_id)
    assert (target["status"], target["code"], target["message"]) == (
        "successful",
        0,
        "runJob successful",
    )
    assert when(target["start_time"]) == START_TIME
    assert when(target["end_time"]) == END_TIME
    assert armadito.admin.get("/jobs", status="successful").json()["total"] == 1


def test_runjobs_failure_message_is_decoded_from_mime_base64(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent = new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id])
    agent.getjobs()
    text = "Scan failed: cannot open /tmp/scanme/ü (Permission denied); " * 4 + "giving up."
    obj = failure(job_id, text)
    encoded = json.loads(obj)["message"]
    lines = encoded.split("\n")
    assert len(lines) > 3
    assert all(len(line) == 76 for line in lines[:-2])
    response = agent.post("jobs", "Runjobs", obj)
    assert response.status_code == 200, response.text
    target = job_target(armadito.admin, job_id, agent.agent_id)
    assert (target["status"], target["code"], target["message"]) == ("failed", 1, text)
    assert when(target["start_time"]) == START_TIME
    assert armadito.admin.get("/jobs", status="failed").json()["total"] == 1


def test_runjobs_reports_each_job_in_its_own_request(armadito: Server, new_agent: NewAgent) -> None:
    agent = new_agent()
    first = create_job(armadito.admin, [agent.agent_id], priority=3)
    second = create_job(armadito.admin, [agent.agent_id], priority=0)
    assert job_ids(agent.getjobs().json()["jobs"]) == [first, second]
    assert agent.runjob(first).status_code == 200
    assert agent.runjob_failed(second, "engine crashed").status_code == 200
    assert job_target(armadito.admin, first, agent.agent_id)["status"] == "successful"
    assert job_target(armadito.admin, second, agent.agent_id)["message"] == "engine crashed"
