"""Scan, State and Alerts reports, with the value quirks of Armadito-family backends."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from garrison.server.alerts import service as alerts_service
from garrison.server.alerts.models import Alert
from tests.conftest import Server
from tests.interop.armadito import (
    ALERT_TIME,
    ALERTS,
    ALERTS_STANDALONE,
    DB_TIME,
    RUNJOBS_SUCCESS,
    SCAN,
    START_TIME,
    STATE,
    WireAgent,
    create_job,
    job_target,
    replace_once,
    when,
    with_job,
)

NewAgent = Callable[..., WireAgent]


def scan_of(server: Server, job_id: int) -> dict[str, Any]:
    page: dict[str, Any] = server.admin.get("/scans", job_id=job_id).json()
    assert page["total"] == 1, page
    scan: dict[str, Any] = page["items"][0]
    return scan


def alerts_of(server: Server, station_id: int) -> list[dict[str, Any]]:
    page: dict[str, Any] = server.admin.get("/alerts", station_id=station_id).json()
    alerts: list[dict[str, Any]] = page["items"]
    return alerts


# -- Scan ---------------------------------------------------------------------------------------


def test_scan_report_is_stored_per_job(armadito: Server, new_agent: NewAgent) -> None:
    agent = new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id])
    assert agent.scan(with_job(SCAN, job_id)).status_code == 200
    scan = scan_of(armadito, job_id)
    assert {k: scan[k] for k in scan if k.endswith("count") or k in ("progress", "station_id")} == {
        "station_id": agent.agent_id,
        "progress": 100,
        "scanned_count": 42,
        "malware_count": 1,
        "suspicious_count": 0,
    }
    assert scan["duration_seconds"] == 0
    assert scan["completed_at"] is not None


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        ("PT0H0M0S", 0),
        ("PT0H1.5M30S", 90),  # 90 s, built with float division
        ("PT1.5H30M0S", 5400),  # 5400 s
        ("PT0H0M59.99S", 59),
        ("PT2.0333333H2M3S", 7323),  # 2 h 2 min 3 s
        ("00:01:30", 90),
        ("01:30:00", 5400),
        ("26:00:05", 93605),
    ],
)
def test_scan_duration_quirks(
    armadito: Server, new_agent: NewAgent, duration: str, seconds: int
) -> None:
    agent = new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id])
    obj = replace_once(
        with_job(SCAN, job_id), '"duration":"PT0H0M0S"', f'"duration":{json.dumps(duration)}'
    )
    assert agent.scan(obj).status_code == 200
    assert scan_of(armadito, job_id)["duration_seconds"] == seconds


def test_scan_values_wrapped_in_arrays_and_numbers_as_strings(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent = new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id])
    obj = with_job(SCAN, str(job_id))  # "job_id":"7"
    obj = replace_once(obj, '"scanned_count":42', '"scanned_count":["232"]')
    obj = replace_once(obj, '"progress":100', '"progress":"100"')
    obj = replace_once(obj, '"malware_count":1', '"malware_count":["3"]')
    obj = replace_once(obj, '"suspicious_count":0', '"suspicious_count":"2"')
    obj = replace_once(obj, '"duration":"PT0H0M0S"', '"duration":["PT0H1.5M30S"]')
    response = agent.scan(obj)
    assert response.status_code == 200, response.text
    scan = scan_of(armadito, job_id)
    assert (
        scan["progress"],
        scan["scanned_count"],
        scan["malware_count"],
        scan["suspicious_count"],
        scan["duration_seconds"],
    ) == (100, 232, 3, 2, 90)


def test_scan_progress_updates_one_row_until_complete(
    armadito: Server, new_agent: NewAgent
) -> None:
    agent = new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id])
    half = replace_once(with_job(SCAN, job_id), '"progress":100', '"progress":50')
    half = replace_once(half, '"scanned_count":42', '"scanned_count":20')
    assert agent.scan(half).status_code == 200
    scan = scan_of(armadito, job_id)
    assert (scan["progress"], scan["scanned_count"], scan["completed_at"]) == (50, 20, None)
    assert agent.scan(with_job(SCAN, job_id)).status_code == 200
    scan = scan_of(armadito, job_id)
    assert (scan["progress"], scan["scanned_count"]) == (100, 42)
    assert scan["completed_at"] is not None


def test_runjobs_numbers_as_strings(armadito: Server, new_agent: NewAgent) -> None:
    agent = new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id])
    obj = with_job(RUNJOBS_SUCCESS, str(job_id))
    obj = replace_once(obj, '"code":0', '"code":"0"')
    obj = replace_once(obj, '"start_time":1795303287', '"start_time":["1795303287"]')
    assert agent.post("jobs", "Runjobs", obj).status_code == 200
    target = job_target(armadito.admin, job_id, agent.agent_id)
    assert (target["status"], target["code"]) == ("successful", 0)
    assert when(target["start_time"]) == START_TIME


# -- State --------------------------------------------------------------------------------------


def test_state_report(armadito: Server, new_agent: NewAgent) -> None:
    agent = new_agent()
    assert agent.state().status_code == 200
    state = armadito.admin.get(f"/stations/{agent.agent_id}/state").json()
    assert state["global_status"] == "up-to-date"
    assert when(state["global_update_time"]) == DB_TIME
    assert state["modules"] == [
        {
            "name": "clamav",
            "mod_status": "up-to-date",
            "mod_update_time": "2017-07-13T23:53:20+00:00",
        }
    ]
    assert state["avdetails"] == []


def test_state_values_wrapped_in_arrays(armadito: Server, new_agent: NewAgent) -> None:
    agent = new_agent()
    obj = replace_once(
        STATE, '"global_update_timestamp":1500000000', '"global_update_timestamp":["1500000000"]'
    )
    obj = replace_once(
        obj, '"mod_update_timestamp":1499990000', '"mod_update_timestamp":"1499990000"'
    )
    obj = replace_once(obj, '"global_status":"up-to-date"', '"global_status":["up-to-date"]')
    assert agent.state(obj).status_code == 200
    state = armadito.admin.get(f"/stations/{agent.agent_id}/state").json()
    assert state["global_status"] == "up-to-date"
    assert when(state["global_update_time"]) == DB_TIME
    assert state["modules"][0]["mod_update_time"] == "2017-07-13T23:53:20+00:00"


# -- Alerts -------------------------------------------------------------------------------------


def design_checksum(name: str, path: str, detected: dt.datetime, agent_id: int, av: str) -> str:
    """The Armadito GLPI plugin's: SHA-256 over ``threat_name;filepath;detection_time;agent_id;
    antivirus;`` (docs/agent-api.md)."""
    stamp = detected.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return hashlib.sha256(f"{name};{path};{stamp};{agent_id};{av};".encode()).hexdigest()


def test_alert_is_stored_with_its_detection_time_and_job(
    armadito: Server, new_agent: NewAgent, request: pytest.FixtureRequest
) -> None:
    agent = new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id])
    assert agent.alerts(with_job(ALERTS, job_id)).status_code == 200
    (alert,) = alerts_of(armadito, agent.agent_id)
    assert {
        k: alert[k]
        for k in ("station_id", "job_id", "threat_name", "filepath", "action", "module_name")
    } == {
        "station_id": agent.agent_id,
        "job_id": job_id,
        "threat_name": "Eicar-Test-Signature",
        "filepath": "/tmp/scanme/eicar.com",
        "action": "none",
        "module_name": "clamav",
    }
    assert alert["antivirus"] == "Armadito"
    assert when(alert["detection_time"]) == ALERT_TIME


def test_alert_checksum_is_the_design_formula(
    armadito: Server, new_agent: NewAgent, request: pytest.FixtureRequest
) -> None:
    agent = new_agent()
    assert agent.alerts().status_code == 200
    text = (
        f"Eicar-Test-Signature;/tmp/scanme/eicar.com;2017-07-14 02:41:40;{agent.agent_id};Armadito;"
    )
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert expected == design_checksum(
        "Eicar-Test-Signature", "/tmp/scanme/eicar.com", ALERT_TIME, agent.agent_id, "Armadito"
    )
    assert expected == alerts_service.checksum(
        "Eicar-Test-Signature", "/tmp/scanme/eicar.com", ALERT_TIME, agent.agent_id, "Armadito"
    )
    with armadito.db.reading() as session:
        stored = session.scalars(select(Alert.checksum)).all()
    assert stored == [expected]


def test_repeated_alert_is_stored_once_but_moves_last_alert_time(
    armadito: Server, new_agent: NewAgent, request: pytest.FixtureRequest
) -> None:
    agent = new_agent()
    job_id = create_job(armadito.admin, [agent.agent_id])
    station = f"/stations/{agent.agent_id}"
    assert armadito.admin.get(station).json()["last_alert_at"] is None
    assert agent.alerts(with_job(ALERTS, job_id)).status_code == 200
    first = when(armadito.admin.get(station).json()["last_alert_at"])
    assert first is not None
    # The same alert again, standalone this time (no job_id).
    response = agent.alerts(ALERTS_STANDALONE)
    assert response.status_code == 200, response.text
    second = when(armadito.admin.get(station).json()["last_alert_at"])
    assert second is not None
    assert second > first
    page = armadito.admin.get("/alerts").json()
    assert page["total"] == 1
    assert [a["job_id"] for a in page["items"]] == [job_id]


def test_same_alert_twice_in_one_request_is_stored_once(
    armadito: Server, new_agent: NewAgent, request: pytest.FixtureRequest
) -> None:
    agent = new_agent()
    one = json.loads(ALERTS_STANDALONE)["alerts"][0]
    other = {**one, "filepath": "/tmp/scanme/eicar2.com"}
    assert agent.alerts(json.dumps({"alerts": [one, other, one]})).status_code == 200
    paths = sorted(a["filepath"] for a in alerts_of(armadito, agent.agent_id))
    assert paths == ["/tmp/scanme/eicar.com", "/tmp/scanme/eicar2.com"]


def test_same_alert_from_two_agents_is_two_alerts(
    armadito: Server, new_agent: NewAgent, request: pytest.FixtureRequest
) -> None:
    first, second = new_agent(), new_agent()
    assert first.alerts().status_code == 200
    assert second.alerts().status_code == 200
    page = armadito.admin.get("/alerts").json()
    assert sorted(a["station_id"] for a in page["items"]) == sorted(
        [first.agent_id, second.agent_id]
    )


def test_alert_without_detection_time_takes_the_receive_time(
    armadito: Server, new_agent: NewAgent, request: pytest.FixtureRequest
) -> None:
    agent = new_agent()
    obj = replace_once(ALERTS_STANDALONE, ',"detection_time":1500000100', "")
    before = dt.datetime.now(dt.UTC)
    assert agent.alerts(obj).status_code == 200
    after = dt.datetime.now(dt.UTC)
    (alert,) = alerts_of(armadito, agent.agent_id)
    detected = when(alert["detection_time"])
    assert detected is not None
    assert before <= detected <= after
    assert alert["detection_time"] == alert["received_at"]


def test_alert_with_an_extra_info_field(
    armadito: Server, new_agent: NewAgent, request: pytest.FixtureRequest
) -> None:
    agent = new_agent()
    obj = replace_once(
        ALERTS_STANDALONE, '"module_name":"clamav"', '"module_name":"clamav","info":"in archive"'
    )
    assert agent.alerts(obj).status_code == 200
    (alert,) = alerts_of(armadito, agent.agent_id)
    assert alert["threat_name"] == "Eicar-Test-Signature"
    assert alert["info"] == {"info": "in archive"}
    assert when(alert["detection_time"]) == ALERT_TIME


def test_alert_values_wrapped_in_arrays(
    armadito: Server, new_agent: NewAgent, request: pytest.FixtureRequest
) -> None:
    agent = new_agent()
    obj = replace_once(
        ALERTS_STANDALONE, '"detection_time":1500000100', '"detection_time":["1500000100"]'
    )
    obj = replace_once(obj, '"name":"Eicar-Test-Signature"', '"name":["Eicar-Test-Signature"]')
    assert agent.alerts(obj).status_code == 200
    (alert,) = alerts_of(armadito, agent.agent_id)
    assert alert["threat_name"] == "Eicar-Test-Signature"
    assert when(alert["detection_time"]) == ALERT_TIME
