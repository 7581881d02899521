"""Hunts on the server (issue 17), on both backends: created for the stations matching now,
reaching stations that enroll or join the target later until the hunt expires, progress
and per-station results, exports, stop, expiry, and hunts over server telemetry."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

from sqlalchemy import update

from garrison.server.hunts import actions
from garrison.server.hunts.models import Hunt
from garrison.server.jobs.models import Job
from tests.conftest import Server
from tests.response.helpers import ResponseAgent, enroll
from tests.support import assert_json_error

SHA = "ab" * 32
QUESTION = {"type": "FindFile", "sha256": SHA}


def start(server: Server, **body: Any) -> dict[str, Any]:
    payload = {"question": QUESTION, "target": {"all": True}, "expires_in": 3600, **body}
    response = server.admin.post("/hunts", payload)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def show(server: Server, hunt_id: int, **params: Any) -> dict[str, Any]:
    response = server.admin.get(f"/hunts/{hunt_id}", **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def hunt_jobs(agent: ResponseAgent) -> list[dict[str, Any]]:
    return [j for j in agent.jobs() if j["job_type"] == "Hunt"]


def answer(agent: ResponseAgent, job: dict[str, Any], found: bool) -> None:
    matches = [{"path": f"/srv/{agent.agent_id}/x.bin", "sha256": SHA, "size": 4}] if found else []
    result = {"found": found, "matches": matches, "scanned": 10, "truncated": False}
    assert agent.report(job["job_id"], result=result).status_code == 200


def test_hunt_reaches_stations_now_and_later(server: Server) -> None:
    first = enroll(server.client, server.first_key)
    armadito = server.enrolled_agent()
    created = start(server)
    hunt_id = created["id"]
    assert created["state"] == "active"
    assert created["progress"]["targeted"] == 1  # the Armadito station is never asked

    [job] = hunt_jobs(first)
    assert job["obj"]["hunt_id"] == hunt_id
    assert job["obj"]["question"] == {**QUESTION, "roots": ["/"], "max_depth": 32}
    assert job["obj"]["expires_at"] > 0
    assert job["obj"]["investigation_id"] == f"job-{job['job_id']}"
    assert armadito.getjobs().json()["jobs"] == []

    later = enroll(server.client, server.first_key)  # enrolled after the hunt began
    [late_job] = hunt_jobs(later)
    assert late_job["job_id"] == job["job_id"]
    assert hunt_jobs(later) == []  # given once
    assert show(server, hunt_id)["progress"]["targeted"] == 2

    first.notify(job)
    answer(first, job, True)
    progress = show(server, hunt_id)["progress"]
    assert progress == {**progress, "targeted": 2, "received": 1, "done": 1, "pending": 1}
    assert progress["found"] == 1
    answer(later, late_job, False)

    detail = show(server, hunt_id)
    rows = {r["station_id"]: r for r in detail["results"]}
    assert rows[first.agent_id]["found"] is True
    assert rows[first.agent_id]["paths"] == [f"/srv/{first.agent_id}/x.bin"]
    assert rows[later.agent_id]["found"] is False
    assert detail["aggregate"]["sha256s"] == [{"sha256": SHA, "stations": 1}]
    assert detail["state"] == "active"  # never finished while stations may still come
    only_found = show(server, hunt_id, found="true")["results"]
    assert [r["station_id"] for r in only_found] == [first.agent_id]
    searched = show(server, hunt_id, contains=f"/srv/{first.agent_id}/")["results"]
    assert [r["station_id"] for r in searched] == [first.agent_id]

    exported = server.admin.get(f"/hunts/{hunt_id}/results", format="csv")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert {(int(r["station_id"]), r["found"]) for r in table} == {
        (first.agent_id, "true"),
        (later.agent_id, "false"),
    }
    lines = server.admin.get(f"/hunts/{hunt_id}/results", format="ndjson").text.splitlines()
    assert {json.loads(line)["station_id"] for line in lines} == {first.agent_id, later.agent_id}
    listed = server.admin.get("/hunts", state="active").json()
    assert [h["id"] for h in listed["items"]] == [hunt_id]


def test_a_failed_answer_is_not_counted_as_an_answer(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    hunt_id = start(server)["id"]
    [job] = hunt_jobs(agent)
    partial = {"found": False, "matches": [], "scanned": 3, "truncated": True}
    assert (
        agent.report(job["job_id"], code=14, result=partial, message="timeout").status_code == 200
    )
    [row] = show(server, hunt_id)["results"]
    assert (row["status"], row["found"], row["message"]) == ("failed", None, "timeout")
    assert row["result"]["partial"] is True
    assert show(server, hunt_id)["progress"]["failed"] == 1


def test_group_target_reaches_a_station_that_joins_later(server: Server) -> None:
    inside = enroll(server.client, server.first_key)
    outside = enroll(server.client, server.first_key)
    assert server.admin.post("/groups", {"name": "web"}).status_code == 201
    server.admin.post("/groups/web/stations", {"add": [inside.agent_id]})
    hunt_id = start(server, target={"group": "web"})["id"]
    assert len(hunt_jobs(inside)) == 1
    assert hunt_jobs(outside) == []
    server.admin.post("/groups/web/stations", {"add": [outside.agent_id]})
    assert len(hunt_jobs(outside)) == 1
    assert show(server, hunt_id)["progress"]["targeted"] == 2


def test_stop_and_expiry(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    stopped = start(server)["id"]
    response = server.admin.post(f"/hunts/{stopped}/stop")
    assert response.status_code == 200
    assert response.json()["state"] == "stopped"
    assert_json_error(server.admin.post(f"/hunts/{stopped}/stop"), 409, "conflict")
    assert hunt_jobs(agent) == []  # its queued target was closed
    [row] = show(server, stopped)["results"]
    assert row["status"] == "cancelled"
    assert "stopped" in row["message"]

    expiring = start(server)["id"]
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    with server.db.transaction() as session:
        hunt = session.get(Hunt, expiring)
        assert hunt is not None
        assert hunt.job_id is not None
        session.execute(update(Hunt).where(Hunt.id == expiring).values(expires_at=past))
        session.execute(update(Job).where(Job.id == hunt.job_id).values(expires_at=past))
    server.ctx.hunt_watch.changed()
    assert hunt_jobs(agent) == []  # an expired hunt is never handed out
    assert show(server, expiring)["state"] == "expired"
    later = enroll(server.client, server.first_key)
    assert hunt_jobs(later) == []
    assert actions.close_expired(server.db) == 1
    [row] = show(server, expiring)["results"]
    assert row["status"] == "cancelled"
    assert "expired" in row["message"]


def test_hunt_input_is_checked(server: Server) -> None:
    def refused(body: dict[str, Any], field: str) -> None:
        payload = {"question": QUESTION, "target": {"all": True}, "expires_in": 3600, **body}
        response = server.admin.post("/hunts", payload)
        assert response.status_code == 422, response.text
        assert field in response.text

    refused({"question": {"type": "Nope"}}, "question.type")
    refused({"question": {"type": "FindFile"}}, "question")
    refused({"question": {"type": "FindFile", "sha256": "xyz"}}, "question.sha256")
    refused({"question": {"type": "FindFile", "yara": "rule {"}}, "question.yara")
    refused({"question": {"type": "FindFile", "glob": "*.so", "roots": ["rel"]}}, "roots")
    refused({"question": {"type": "CollectFile", "path": "/a/../b"}}, "question.path")
    refused({"question": {"type": "RunScript", "script": "s", "sha256": "a" * 64}}, "script")
    refused({"target": {"all": False}}, "target.all")
    refused({"target": {"planet": "mars"}}, "target")
    refused({"expires_in": 5}, "expires_in")
    missing = server.admin.post(
        "/hunts", {"question": QUESTION, "target": {"group": "none"}, "expires_in": 3600}
    )
    assert_json_error(missing, 404, "not_found")
    assert_json_error(server.admin.get("/hunts/999"), 404, "not_found")


def test_telemetry_hunts_are_answered_on_the_server(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    quiet = enroll(server.client, server.first_key)
    event = {
        "id": "e-1",
        "type": "process_started",
        "time": 1700000000,
        "data": {
            "time": 1700000000,
            "file_path": "/usr/bin/evil",
            "sha256": SHA,
            "pid": 4,
            "unique_pid": "u-4",
        },
    }
    posted = server.client.post("/api/events", content=json.dumps([event]), headers=agent.headers())
    assert posted.status_code == 200, posted.text
    assert posted.json()["stored"] == 1, posted.text
    created = start(server, question={"type": "IocSweep", "hashes": [SHA]})
    assert created["job_id"] is None
    detail = show(server, created["id"])
    assert [(r["station_id"], r["found"]) for r in detail["results"]] == [(agent.agent_id, True)]
    assert detail["results"][0]["paths"] == ["/usr/bin/evil"]
    assert quiet.agent_id not in {r["station_id"] for r in detail["results"]}
    assert hunt_jobs(agent) == []  # nothing is asked of the agents
