"""How requests reach the server: paths, query strings, headers, key order, authentication."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Server
from tests.interop.armadito import (
    ALERTS,
    AVCONFIG,
    PATH_STYLES,
    SCAN,
    SCHEDULER,
    STATE,
    WireAgent,
    create_job,
    job_target,
    with_job,
)
from tests.support import assert_json_error

NewAgent = Callable[..., WireAgent]


@pytest.mark.parametrize("style", list(PATH_STYLES))
def test_alerts_endpoint_answers_on_every_path_style(
    armadito: Server, new_agent: NewAgent, style: str, request: pytest.FixtureRequest
) -> None:
    agent = new_agent(style=style)
    job_id = create_job(armadito.admin, [agent.agent_id])
    assert agent.alerts(with_job(ALERTS, job_id)).status_code == 200
    assert agent.alerts().status_code == 200
    page = armadito.admin.get("/alerts", station_id=agent.agent_id).json()
    assert page["total"] == 1
    assert page["items"][0]["job_id"] == job_id


@pytest.mark.parametrize("style", list(PATH_STYLES))
def test_every_endpoint_answers_on_every_path_style(
    armadito: Server, new_agent: NewAgent, style: str
) -> None:
    admin = armadito.admin
    desired = {"attributes": [{"attr": "on-access:enabled", "value": "0"}]}
    assert admin.put("/configs/avconfig/desired", desired).status_code == 200
    sched = {"attributes": [{"attr": "scheduler:task:State:freq", "value": "0 * * * *"}]}
    assert admin.put("/configs/scheduler/desired", sched).status_code == 200

    agent = new_agent(enrolled=False, style=style)
    # POST /api/agents
    enrolled = agent.enroll(armadito.first_key)
    assert enrolled.status_code == 200, enrolled.text
    assert agent.agent_id > 0
    sid = agent.agent_id
    job_id = create_job(admin, [sid])
    # GET /api/jobs
    got = agent.getjobs()
    assert got.status_code == 200, got.text
    assert [j["job_id"] for j in got.json()["jobs"]] == [job_id]
    # POST /api/scans
    assert agent.scan(with_job(SCAN, job_id)).status_code == 200
    scans = admin.get("/scans", job_id=job_id).json()
    assert [(s["station_id"], s["scanned_count"]) for s in scans["items"]] == [(sid, 42)]
    # POST /api/jobs
    assert agent.runjob(job_id).status_code == 200
    assert job_target(admin, job_id, sid)["status"] == "successful"
    # POST /api/states
    assert agent.state().status_code == 200
    assert admin.get(f"/stations/{sid}/state").json()["global_status"] == "up-to-date"
    # POST /api/avconfigs
    assert agent.avconfig().status_code == 200
    effective = admin.get(f"/stations/{sid}/configs/avconfig").json()["effective"]
    assert effective == {
        "on-access:enabled": "1",
        "on-access:mount-points": "/home",
        "on-demand:archives": "0",
    }
    # POST /api/schedulers
    assert agent.scheduler().status_code == 200
    config = admin.get(f"/stations/{sid}/configs/scheduler").json()
    assert config["name"] == "Cron"
    assert config["effective"] == {
        "scheduler:task:Getjobs:freq": "* * * * *",
        "scheduler:task:Runjobs:freq": "*/5 * * * *",
    }
    # GET /api/avconfigs and GET /api/schedulers
    avconfig = agent.request("GET", agent.url("avconfigs"))
    assert avconfig.status_code == 200, avconfig.text
    assert avconfig.json() == {"avconfig": [{"attr": "on-access:enabled", "value": "0"}]}
    scheduler = agent.request("GET", agent.url("schedulers"))
    assert scheduler.status_code == 200, scheduler.text
    assert scheduler.json() == {
        "name": "Cron",
        "confdetails": [{"attr": "scheduler:task:State:freq", "value": "0 * * * *"}],
    }


def test_double_slash_path_really_reaches_the_server_with_two_slashes(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent = new_agent(style="double-slash")
    response = agent.getjobs()
    assert response.request.url.raw_path.startswith(b"//api/jobs?")
    assert response.json() == {"jobs": []}


@pytest.mark.parametrize(
    "query",
    [
        "agent_id={id}&antivirus=Armadito&agent_id={id}",
        "antivirus=Armadito&agent_id={id}&agent_id={id}",
        "agent_id={id}&agent_id={id}&antivirus=Armadito",
        "agent_id={id}&antivirus=Armadito",
        "antivirus=Armadito&agent_id={id}",
    ],
)
def test_getjobs_accepts_agent_id_twice_in_any_order(
    armadito: Server, new_agent: NewAgent, query: str
) -> None:
    agent = new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id])
    response = agent.getjobs(query.format(id=agent.agent_id))
    assert response.status_code == 200, response.text
    assert [j["job_id"] for j in response.json()["jobs"]] == [job_id]


def test_getjobs_with_two_different_agent_ids_is_a_json_error_and_downloads_nothing(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent, other = new_agent(), new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id])
    response = agent.getjobs(
        f"agent_id={agent.agent_id}&antivirus=Armadito&agent_id={other.agent_id}"
    )
    assert 400 <= response.status_code < 500
    body = assert_json_error(response, response.status_code)
    assert body["error"] == "agent_id is given twice with different values"
    assert body["field"] == "agent_id"
    assert job_target(armadito.admin, job_id, agent.agent_id)["status"] == "queued"


def test_getjobs_with_two_different_agent_ids_is_400(armadito: Server, new_agent: NewAgent) -> None:
    agent, other = new_agent(), new_agent()
    response = agent.getjobs(
        f"agent_id={other.agent_id}&antivirus=Armadito&agent_id={agent.agent_id}"
    )
    assert_json_error(response, 400)


def test_get_requests_carry_content_type_json_and_no_body(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent = new_agent()
    for name in ("jobs", "avconfigs", "schedulers"):
        query = f"agent_id={agent.agent_id}&antivirus=Armadito&agent_id={agent.agent_id}"
        response = agent.request("GET", agent.url(name, query if name == "jobs" else ""))
        assert response.request.headers["content-type"] == "application/json"
        assert response.request.content == b""
        assert response.status_code == 200, (name, response.text)
        assert response.headers["content-type"] == "application/json"


def _reordered(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _reordered(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_reordered(v, rng) for v in value]
    return value


def test_every_order_of_the_envelope_keys_is_accepted(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent = new_agent()
    literal = json.loads(agent.body("State", STATE))
    task_orders = list(itertools.permutations(literal["task"]))
    for n, order in enumerate(itertools.permutations(literal)):
        task_order = task_orders[n % len(task_orders)]
        reordered = {k: literal[k] for k in order}
        reordered["task"] = {k: literal["task"][k] for k in task_order}
        body = json.dumps(reordered)
        response = agent.post_raw("states", body)
        assert response.status_code == 200, (order, task_order, response.text)
    assert n + 1 == 24
    state = armadito.admin.get(f"/stations/{agent.agent_id}/state").json()
    assert state["global_status"] == "up-to-date"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_key_order_inside_task_objects(
    armadito: Server, new_agent: NewAgent, seed: int
) -> None:
    rng = random.Random(seed)
    admin = armadito.admin

    def shuffled(task: str, obj: str) -> str:
        return json.dumps(_reordered(json.loads(agent.body(task, obj)), rng))

    agent = new_agent(enrolled=False)
    enrolled = agent.post_raw(
        "agents",
        json.dumps(
            _reordered(
                json.loads(agent.body("Enrollment", json.dumps({"key": armadito.first_key}))), rng
            )
        ),
    )
    assert enrolled.status_code == 200, enrolled.text
    agent.agent_id = sid = enrolled.json()["agent_id"]
    job_id = create_job(admin, [sid])
    assert agent.getjobs().json()["jobs"][0]["job_id"] == job_id
    for name, task, obj in [
        ("scans", "Scan", with_job(SCAN, job_id)),
        ("jobs", "Runjobs", with_job('{"job_id":7,"code":0,"message":"ok"}', job_id)),
        ("states", "State", STATE),
        ("avconfigs", "AVConfig", AVCONFIG),
        ("schedulers", "Scheduler", SCHEDULER),
    ]:
        response = agent.post_raw(name, shuffled(task, obj))
        assert response.status_code == 200, (name, response.text)
    scan = admin.get("/scans", job_id=job_id).json()["items"][0]
    assert (scan["progress"], scan["scanned_count"], scan["malware_count"]) == (100, 42, 1)
    assert job_target(admin, job_id, sid)["status"] == "successful"
    assert admin.get(f"/stations/{sid}/configs/avconfig").json()["effective"] == {
        "on-access:enabled": "1",
        "on-access:mount-points": "/home",
        "on-demand:archives": "0",
    }


def test_random_key_order_in_alerts(
    armadito: Server, new_agent: NewAgent, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(11)
    agent = new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id])
    for _ in range(3):
        body = json.dumps(
            _reordered(json.loads(agent.body("Alerts", with_job(ALERTS, job_id))), rng)
        )
        response = agent.post_raw("alerts", body)
        assert response.status_code == 200, response.text
    page = armadito.admin.get("/alerts", station_id=agent.agent_id).json()
    assert [(a["threat_name"], a["filepath"], a["module_name"]) for a in page["items"]] == [
        ("Eicar-Test-Signature", "/tmp/scanme/eicar.com", "clamav")
    ]


def test_agent_sends_basic_credentials_only_after_a_basic_challenge(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent = new_agent(enrolled=False)
    # Enrollment is public: no challenge, no credentials.
    assert agent.enroll(armadito.first_key).status_code == 200
    assert agent.challenges == 0
    bare = armadito.client.post(
        agent.url("states"),
        content=agent.body("State", STATE),
        headers={"Content-Type": "application/json"},
    )
    body = assert_json_error(bare, 401)
    assert body["error"] == "authentication required"
    assert bare.headers["www-authenticate"] == 'Basic realm="Garrison"'
    # The agent answers the challenge and succeeds.
    assert agent.state().status_code == 200
    assert agent.challenges == 1
