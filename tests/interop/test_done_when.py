"""The issue's "Done when", end to end: an Armadito-style client enrolls with a key, reports its
Scheduler, State and AVConfig, runs a Scan job created through the admin API, reports the
result, scan progress and alerts (one repeated), and the admin API shows all of it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server
from tests.interop.armadito import (
    ALERT_TIME,
    ALERTS,
    ALERTS_STANDALONE,
    BASIC,
    DB_TIME,
    END_TIME,
    JOBS_REPLY,
    SCAN,
    START_TIME,
    Client,
    WireAgent,
    replace_once,
    when,
    with_job,
)
from tests.live import start_server
from tests.support import Admin

AV = {"on-access:enabled": "1", "on-access:mount-points": "/home", "on-demand:archives": "0"}
SCHED = {"scheduler:task:Getjobs:freq": "* * * * *", "scheduler:task:Runjobs:freq": "*/5 * * * *"}


def done_when(admin: Admin, agent: WireAgent, connect: Callable[[], Client]) -> None:
    key_response = admin.post("/enrollment-keys", {"uses": 1, "expires_in": 3600})
    assert key_response.status_code == 201, key_response.text
    key = key_response.json()["key"]

    # armadito-agent -t "Enrollment" -k KEY
    enrolled = agent.enroll(key)
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.content.startswith(b"{")
    sid = agent.agent_id
    assert sid > 0
    # -t Scheduler, -t State, -t AVConfig
    for response in (agent.scheduler(), agent.state(), agent.avconfig()):
        assert response.status_code == 200, response.text
    # -t Getjobs: nothing yet.
    assert agent.getjobs().json() == {"jobs": []}

    created = admin.post(
        "/jobs",
        {
            "type": "Scan",
            "station_ids": [sid],
            "priority": 2,
            "params": {"path": "/tmp/scanme", "name": "quick"},
        },
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    got = agent.getjobs()
    assert got.json() == json.loads(with_job(JOBS_REPLY, job_id))

    # -t Runjobs: the job runs a scan, which reports progress and alerts on connections of
    # its own while the Runjobs connection is held open.
    runjobs, scan, alerts = connect(), connect(), connect()
    half = replace_once(with_job(SCAN, job_id), '"progress":100', '"progress":50')
    half = replace_once(half, '"scanned_count":42', '"scanned_count":21')
    half = replace_once(half, '"malware_count":1', '"malware_count":0')
    assert agent.scan(half, client=scan).status_code == 200
    eicar = json.loads(ALERTS_STANDALONE)["alerts"][0]
    other = {**eicar, "name": "Win.Test.Other", "filepath": "/tmp/scanme/other.exe"}
    two = with_job(
        json.dumps({"job_id": 7, "alerts": [eicar, other]}, separators=(",", ":")), job_id
    )
    assert agent.alerts(two, client=alerts).status_code == 200
    done = replace_once(with_job(SCAN, job_id), '"duration":"PT0H0M0S"', '"duration":"PT0H1.5M30S"')
    assert agent.scan(done, client=scan).status_code == 200
    # The repeated alert: once more with the job, once more standalone (-t Alerts).
    assert agent.alerts(with_job(ALERTS, job_id), client=alerts).status_code == 200
    assert agent.alerts(ALERTS_STANDALONE).status_code == 200
    assert agent.runjob(job_id, client=runjobs).status_code == 200
    assert agent.getjobs().json() == {"jobs": []}

    # The admin API shows it all.
    stations = admin.get("/stations").json()
    assert stations["total"] == 1
    station = stations["items"][0]
    assert {
        k: station[k]
        for k in ("id", "uuid", "agent_version", "antivirus_name", "antivirus_version", "os_name")
    } == {
        "id": sid,
        "uuid": agent.uuid,
        "agent_version": "0.10.1",
        "antivirus_name": "Armadito",
        "antivirus_version": "0.12.8",
        "os_name": "linux",
    }
    assert station["last_alert_at"] is not None

    avconfig = admin.get(f"/stations/{sid}/configs/avconfig").json()
    assert (avconfig["effective"], avconfig["differences"]) == (AV, {})
    scheduler = admin.get(f"/stations/{sid}/configs/scheduler").json()
    assert (scheduler["name"], scheduler["effective"]) == ("Cron", SCHED)
    state = admin.get(f"/stations/{sid}/state").json()
    assert (state["global_status"], when(state["global_update_time"])) == ("up-to-date", DB_TIME)

    job = admin.get(f"/jobs/{job_id}").json()
    assert (job["type"], job["priority"], job["status_counts"]) == ("Scan", 2, {"successful": 1})
    (target,) = job["targets"]
    assert (target["station_id"], target["status"], target["code"]) == (sid, "successful", 0)
    assert (when(target["start_time"]), when(target["end_time"])) == (START_TIME, END_TIME)

    scans = admin.get("/scans", station_id=sid).json()
    assert scans["total"] == 1
    (result,) = scans["items"]
    assert {
        k: result[k]
        for k in (
            "job_id",
            "progress",
            "duration_seconds",
            "scanned_count",
            "malware_count",
            "suspicious_count",
        )
    } == {
        "job_id": job_id,
        "progress": 100,
        "duration_seconds": 90,
        "scanned_count": 42,
        "malware_count": 1,
        "suspicious_count": 0,
    }
    assert result["completed_at"] is not None

    found = admin.get("/alerts", station_id=sid).json()
    assert found["total"] == 2
    assert sorted((a["threat_name"], a["filepath"], a["job_id"]) for a in found["items"]) == [
        ("Eicar-Test-Signature", "/tmp/scanme/eicar.com", job_id),
        ("Win.Test.Other", "/tmp/scanme/other.exe", job_id),
    ]
    assert {when(a["detection_time"]) for a in found["items"]} == {ALERT_TIME}
    assert admin.get("/alerts", threat="Eicar").json()["total"] == 1


def test_done_when_in_process(armadito: Server, request: pytest.FixtureRequest) -> None:
    agent = WireAgent(armadito.client)
    done_when(armadito.admin, agent, lambda: armadito.client)
    assert agent.challenges > 0  # it authenticated the Armadito way


@pytest.fixture
def live_clients() -> Iterator[Callable[[], httpx.Client]]:
    opened: list[httpx.Client] = []

    def connect() -> httpx.Client:
        client = httpx.Client(timeout=30)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


@pytest.mark.slow
def test_done_when_against_a_real_server_process(
    tmp_path: Path,
    database_url: str,
    live_clients: Callable[[], httpx.Client],
    request: pytest.FixtureRequest,
) -> None:
    live = start_server(
        tmp_path / "live",
        database_url=database_url,
        extra_env={
            "GARRISON_AGENT_BASIC_USER": BASIC[0],
            "GARRISON_AGENT_BASIC_PASSWORD": BASIC[1],
        },
    )
    try:
        admin = Admin(httpx.Client(base_url=live.url, timeout=30), live.token)
        # A trailing slash in the agent's server URL: every path starts with "//api/".
        agent = WireAgent(live_clients(), base=live.url, style="double-slash")
        done_when(admin, agent, live_clients)
        admin.client.close()
    finally:
        assert live.stop() == 0, live.output
