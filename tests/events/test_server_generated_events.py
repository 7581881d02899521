"""The events only the server sees, each appearing after the agent or admin traffic that
causes it, with the arguments the Dr.Web seed gives it."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from tests.conftest import Server
from tests.events.helpers import (
    alert,
    events,
    one_event,
    post_events,
    set_last_seen,
)
from tests.security.checks import create_scan_job
from tests.support import ArmaditoAgent


def types_of(server: Server, station_id: int | None = None) -> list[str]:
    params = {"station_id": station_id} if station_id is not None else {}
    return sorted(e["type"] for e in events(server, **params))


def downloaded_job(server: Server, agent: ArmaditoAgent) -> int:
    job_id = create_scan_job(server, agent.agent_id)
    jobs = agent.getjobs().json()["jobs"]
    assert [j["job_id"] for j in jobs] == [job_id]
    return job_id


def test_enrollment_emits_station_created_and_station_connected(server: Server) -> None:
    assert events(server, type=["station_created", "station_connected"]) == []
    agent = server.agent()
    response = agent.enroll(server.first_key)
    assert response.status_code == 200, response.text
    created = one_event(server, "station_created")
    key_id = created["data"]["login"].removeprefix("enrollment-key:")
    assert key_id.isdigit()
    assert created["station_id"] == agent.agent_id
    assert created["origin"] == "server"
    assert created["data"] == {
        "login": f"enrollment-key:{key_id}",
        "id": agent.agent_id,
        "name": agent.uuid,
        "state": 0,
    }
    connected = one_event(server, "station_connected")
    assert connected["station_id"] == agent.agent_id
    assert connected["data"] == {
        "id": agent.agent_id,
        "address": "testclient",
        "station": agent.uuid,
        "name": agent.uuid,
        "os": "linux",
        "platform": "Linux",
        "compsid": agent.uuid,
    }
    assert connected["seq"] > created["seq"]


def test_re_enrollment_emits_authorization_in_progress(server: Server) -> None:
    agent = server.enrolled_agent()
    assert events(server, type="station_authorization_in_progress") == []
    again = agent.enroll(server.first_key)
    assert again.status_code == 200, again.text
    assert again.json()["agent_id"] == agent.agent_id
    event = one_event(server, "station_authorization_in_progress")
    data = event["data"]
    assert event["station_id"] == agent.agent_id
    last_time = data.pop("last_time")
    last_server = data.pop("last_server")
    assert last_time.endswith("Z")
    assert isinstance(last_server, str)
    assert last_server
    assert data == {
        "id": agent.agent_id,
        "connected": True,
        "current_address": "testclient",
        "current_name": agent.uuid,
        "last_address": "testclient",
        "new_name": "",
        "new_address": "testclient",
    }
    # Re-enrolling creates nothing new, and connects again.
    assert len(events(server, type="station_created")) == 1
    assert len(events(server, type="station_connected")) == 2


def test_a_bad_enrollment_key_emits_authorization_failed(server: Server) -> None:
    agent = server.agent()
    response = agent.enroll("AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")
    assert response.status_code in (401, 403), response.text
    event = one_event(server, "station_authorization_failed")
    assert event["station_id"] is None
    data = event["data"]
    assert data.pop("reason") == response.json()["error"]
    assert data == {
        "address": "testclient",
        "station": agent.uuid,
        "type": "station",
        "compsid": agent.uuid,
    }
    assert events(server, type=["station_created", "station_connected"]) == []
    # A bad key for a known station names that station.
    known = server.enrolled_agent()
    refused = known.enroll("AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")
    assert refused.status_code == response.status_code, refused.text
    (event,) = events(server, type="station_authorization_failed", station_id=known.agent_id)
    assert event["data"]["id"] == known.agent_id
    assert event["data"]["station"] == known.uuid


def test_deleting_a_station_emits_station_deleted_and_an_audit_event(server: Server) -> None:
    agent = server.enrolled_agent()
    assert server.admin.delete(f"/stations/{agent.agent_id}").status_code == 204
    deleted = one_event(server, "station_deleted")
    assert deleted["station_id"] == agent.agent_id
    assert deleted["data"] == {"login": "admin", "id": agent.agent_id}
    audit = [e for e in events(server, type="audit") if e["data"]["action"] == "station.delete"]
    assert len(audit) == 1
    assert audit[0]["data"]["target"] == str(agent.agent_id)
    assert audit[0]["data"]["user"] == "admin"
    assert audit[0]["data"]["domain"] == "station"
    assert audit[0]["data"]["result"] == "Success"
    # The deleted station's history stays searchable.
    assert "station_created" in types_of(server, agent.agent_id)


def test_runjobs_emits_task_executed(server: Server) -> None:
    agent = server.enrolled_agent()
    job_id = downloaded_job(server, agent)
    now = int(time.time())
    assert events(server, type="task_executed") == []
    assert agent.runjob(job_id, start=now - 2, end=now).status_code == 200
    event = one_event(server, "task_executed")
    assert event["station_id"] == agent.agent_id
    assert event["data"] == {
        "id": agent.agent_id,
        "address": "testclient",
        "station": agent.uuid,
        "done": True,
        "time": dt.datetime.fromtimestamp(now, dt.UTC).isoformat().replace("+00:00", "Z"),
        "name": "Scan",
        "job": job_id,
        "error": "runJob successful",
    }
    assert events(server, type="station_datetime_error") == []
    # A failed job: done is false and error is the decoded message.
    failing = downloaded_job(server, agent)
    response = agent.runjob(failing, code=3, message="scan path not found", start=now, end=now)
    assert response.status_code == 200, response.text
    data = next(e for e in events(server, type="task_executed") if e["data"]["job"] == failing)
    assert (data["data"]["done"], data["data"]["error"]) == (False, "scan path not found")


def test_a_station_clock_hours_off_emits_station_datetime_error(server: Server) -> None:
    agent = server.enrolled_agent()
    job_id = downloaded_job(server, agent)
    before = int(time.time() * 1000)
    off = int(time.time()) - 3 * 3600
    assert agent.runjob(job_id, start=off - 1, end=off).status_code == 200
    after = int(time.time() * 1000)
    event = one_event(server, "station_datetime_error")
    assert event["station_id"] == agent.agent_id
    data = event["data"]
    assert before <= data.pop("now") <= after
    assert data == {
        "id": agent.agent_id,
        "address": "testclient",
        "station": agent.uuid,
        "time": off * 1000,
        "date": off * 1000,
        "valid_delta": 300_000,
    }
    # The delta is a setting: two minutes off is within 300 s, not within 30 s.
    second = downloaded_job(server, agent)
    off = int(time.time()) - 120
    assert agent.runjob(second, start=off, end=off).status_code == 200
    assert len(events(server, type="station_datetime_error")) == 1
    assert server.admin.patch("/settings", {"datetime_valid_delta_seconds": 30}).status_code == 200
    third = downloaded_job(server, agent)
    assert agent.runjob(third, start=off, end=off).status_code == 200
    errors = events(server, type="station_datetime_error")
    assert len(errors) == 2
    assert (errors[0]["data"]["time"], errors[0]["data"]["valid_delta"]) == (off * 1000, 30_000)


def test_a_completed_scan_emits_station_scan_statistics_once(server: Server) -> None:
    agent = server.enrolled_agent()
    job_id = downloaded_job(server, agent)
    report = {
        "job_id": job_id,
        "progress": 50,
        "duration": "PT0H1.5M30S",
        "scanned_count": 42,
        "malware_count": 1,
        "suspicious_count": 2,
    }
    assert agent.scan(report).status_code == 200
    assert events(server, type="station_scan_statistics") == []
    assert agent.scan({**report, "progress": 100}).status_code == 200
    assert agent.scan({**report, "progress": 100}).status_code == 200
    event = one_event(server, "station_scan_statistics")
    data = event["data"]
    assert data.pop("time").endswith("Z")
    assert data == {
        "id": agent.agent_id,
        "address": "testclient",
        "station": agent.uuid,
        "scanned": 42,
        "infected": 1,
        "suspicious": 2,
        "elapsedtime": 90,
        "modifications": 0,
        "cured": 0,
        "deleted": 0,
        "renamed": 0,
        "moved": 0,
        "locked": 0,
        "errors": 0,
    }


def test_scan_statistics_count_the_files_quarantined_and_deleted(server: Server) -> None:
    """As the Garrison agent reports them, else from the alerts of the scan's job."""
    agent = server.enrolled_agent()
    job_id = downloaded_job(server, agent)
    found = [
        {**alert(), "filepath": "/a", "action": "quarantined"},
        {**alert(), "filepath": "/a", "action": "quarantined", "name": "Other.Name"},
        {**alert(), "filepath": "/b", "action": "quarantined"},
        {**alert(), "filepath": "/c", "action": "deleted"},
        {**alert(), "filepath": "/d", "action": "none"},
    ]
    assert agent.alerts(found, job_id=job_id).json()["stored"] == 5
    report = {"job_id": job_id, "progress": 100, "scanned_count": 9, "malware_count": 4}
    assert agent.scan(report).status_code == 200
    data = one_event(server, "station_scan_statistics")["data"]
    assert (data["moved"], data["deleted"]) == (2, 1)

    other = server.enrolled_agent()
    reported = {"progress": 100, "scanned_count": 3, "quarantined_count": 2, "deleted_count": 1}
    assert other.scan(reported).status_code == 200
    (event,) = events(server, type="station_scan_statistics", station_id=other.agent_id)
    assert (event["data"]["moved"], event["data"]["deleted"]) == (2, 1)


def test_each_new_alert_emits_threat_detected_and_a_repeat_does_not(server: Server) -> None:
    agent = server.enrolled_agent()
    first = alert("Eicar-Test-Signature", "/tmp/scanme/eicar.com", 1500000100)
    second = alert("Win.Trojan.Agent", "/tmp/scanme/agent.exe", 1500000200)
    assert agent.alerts([first, second]).json()["stored"] == 2
    threats = events(server, type="threat_detected")
    assert sorted(e["data"]["virus"] for e in threats) == [
        "Eicar-Test-Signature",
        "Win.Trojan.Agent",
    ]
    eicar = next(e for e in threats if e["data"]["virus"] == "Eicar-Test-Signature")
    assert eicar["station_id"] == agent.agent_id
    assert eicar["time"].startswith("2017-07-14T02:41:40")
    assert eicar["data"] == {
        "id": agent.agent_id,
        "address": "testclient",
        "station": agent.uuid,
        "time": "2017-07-14T02:41:40Z",
        "virus": "Eicar-Test-Signature",
        "object": "/tmp/scanme/eicar.com",
        "action": "none",
        "objecttype": 0,
        "compsid": agent.uuid,
    }
    repeat = agent.alerts([first])
    assert repeat.json()["stored"] == 0
    assert repeat.json()["duplicates"] == 1
    assert len(events(server, type="threat_detected")) == 2


def test_an_alert_sha256_is_carried_by_threat_detected(server: Server) -> None:
    agent = server.enrolled_agent()
    digest = "ab" * 32
    item: dict[str, Any] = {**alert(), "info": {"sha256": digest}}
    assert agent.alerts([item]).status_code == 200
    assert one_event(server, "threat_detected")["data"]["sha256"] == digest
    assert [e["type"] for e in events(server, hash=digest)] == ["threat_detected"]
    # The agent's info object is stored as it came, not nested in a second "info".
    (stored,) = server.admin.get("/alerts", station_id=agent.agent_id).json()["items"]
    assert stored["info"] == {"sha256": digest}


def state(modules: list[dict[str, Any]], avdetails: list[Any] | None = None) -> dict[str, Any]:
    return {
        "dbinfo": {
            "global_status": "up-to-date",
            "global_update_timestamp": 1500000000,
            "modules": modules,
        },
        "avdetails": avdetails or [],
    }


def test_state_emits_virus_bases_and_components_lists(server: Server) -> None:
    agent = server.enrolled_agent()
    modules = [
        {"name": "clamav", "mod_status": "up-to-date", "mod_update_timestamp": 1499990000},
        {"name": "moduleH1", "mod_status": "non-available", "mod_update_timestamp": 1499990060},
    ]
    assert agent.state(state(modules)).status_code == 200
    base = {"id": agent.agent_id, "address": "testclient", "station": agent.uuid}
    bases = one_event(server, "virus_bases_received")
    assert bases["station_id"] == agent.agent_id
    assert bases["data"] == {
        **base,
        "count": 2,
        "name_0": "clamav",
        "type_0": "up-to-date",
        "issued_0": "2017-07-13T23:53:20Z",
        "name_1": "moduleH1",
        "type_1": "non-available",
        "issued_1": "2017-07-13T23:54:20Z",
    }
    components = one_event(server, "components_list_received")
    assert components["data"] == {
        **base,
        "count": 2,
        "component_0": "clamav",
        "time_0": "2017-07-13T23:53:20Z",
        "component_1": "moduleH1",
        "time_1": "2017-07-13T23:54:20Z",
    }
    assert events(server, type=["station_update_failed", "station_reboot_required"]) == []


def test_virus_bases_received_carries_version_record_count_and_hash(server: Server) -> None:
    agent = server.enrolled_agent()
    digest = "ab" * 32
    modules = [
        {
            "name": "garrison-hash",
            "mod_status": "up-to-date",
            "mod_update_timestamp": 1499990000,
            "mod_version": "2026.11.30",
            "mod_records": 12345,
            "sha256": digest,
        },
        {"name": "clamav", "mod_status": "up-to-date", "mod_update_timestamp": 1499990060},
    ]
    assert agent.state(state(modules)).status_code == 200
    data = one_event(server, "virus_bases_received")["data"]
    assert (data["version_0"], data["records_0"], data["sha256_0"]) == (
        "2026.11.30",
        12345,
        digest,
    )
    # An Armadito module carries none of them.
    assert {"version_1", "records_1", "sha256_1"} & set(data) == set()


def test_a_module_hash_that_is_not_a_sha256_is_refused(server: Server) -> None:
    agent = server.enrolled_agent()
    module = {"name": "rules", "mod_status": "up-to-date", "version": 1, "sha256": "z" * 64}
    answer = agent.state(state([module]))
    assert answer.status_code == 422
    assert "sha256 must be 64 hexadecimal digits" in answer.json()["message"]
    assert events(server, type=["virus_bases_received"]) == []


def test_a_critical_module_emits_station_update_failed(server: Server) -> None:
    agent = server.enrolled_agent()
    modules = [
        {"name": "clamav", "mod_status": "up-to-date", "mod_update_timestamp": 1499990000},
        {"name": "moduleH1", "mod_status": "critical", "mod_update_timestamp": 1499990060},
    ]
    assert agent.state(state(modules)).status_code == 200
    event = one_event(server, "station_update_failed")
    assert event["station_id"] == agent.agent_id
    assert event["data"] == {
        "id": agent.agent_id,
        "address": "testclient",
        "station": agent.uuid,
        "product": "moduleH1",
        "description": "module moduleH1 reports critical",
        "from_revision_date": "2017-07-13T23:54:20Z",
    }


def test_reboot_required_in_avdetails_emits_station_reboot_required(server: Server) -> None:
    agent = server.enrolled_agent()
    modules = [{"name": "clamav", "mod_status": "up-to-date", "mod_update_timestamp": 1499990000}]
    details = [{"attr": "on-access:enabled", "value": "1"}]
    assert agent.state(state(modules, details)).status_code == 200
    assert events(server, type="station_reboot_required") == []
    details.append({"attr": "reboot-required", "value": "1"})
    assert agent.state(state(modules, details)).status_code == 200
    event = one_event(server, "station_reboot_required")
    assert event["data"] == {
        "id": agent.agent_id,
        "address": "testclient",
        "station": agent.uuid,
        "product": "Armadito",
        "description": "the station reports that it must be rebooted",
    }
    assert len(events(server, type="virus_bases_received")) == 2


def test_disconnected_after_the_timeout_then_connected_again(server: Server) -> None:
    ctx = server.ctx
    assert server.admin.patch("/settings", {"offline_after_seconds": 30}).status_code == 200
    agent = server.enrolled_agent()
    quiet = server.enrolled_agent()
    server.flush_presence()
    ctx.presence.sweep(ctx.db)
    assert events(server, type="DISCONNECTED") == []  # both checked in just now

    set_last_seen(server, agent.agent_id, dt.timedelta(seconds=45))
    ctx.presence.sweep(ctx.db)
    event = one_event(server, "DISCONNECTED")
    assert event["station_id"] == agent.agent_id
    assert event["origin"] == "server"
    assert set(event["data"]) == {"ts"}
    # Its time is the station's last check-in, 45 s ago.
    last = dt.datetime.fromisoformat(event["data"]["ts"].replace("Z", "+00:00"))
    ago = (dt.datetime.now(dt.UTC) - last).total_seconds()
    assert 44 <= ago <= 60, ago
    # A second sweep does not repeat it.
    ctx.presence.sweep(ctx.db)
    assert len(events(server, type="DISCONNECTED")) == 1
    assert len(events(server, type="station_connected", station_id=agent.agent_id)) == 1

    # The station checks in again: connected again, once.
    assert agent.getjobs().status_code == 200
    server.flush_presence()
    connected = events(server, type="station_connected", station_id=agent.agent_id)
    assert len(connected) == 2
    assert connected[0]["seq"] > event["seq"]
    assert agent.getjobs().status_code == 200
    server.flush_presence()
    assert len(events(server, type="station_connected", station_id=agent.agent_id)) == 2
    assert events(server, type="DISCONNECTED", station_id=quiet.agent_id) == []


def test_shutting_down_marks_the_station_offline_at_once(server: Server) -> None:
    """Not 300 s later: offline with DISCONNECTED when its agent says SHUTTING_DOWN; the
    request carrying it, or one begun before it, does not bring it back; the next does."""
    agent = server.enrolled_agent()
    server.flush_presence()

    def online() -> bool:
        return bool(server.admin.get(f"/stations/{agent.agent_id}").json()["online"])

    def listed_online() -> bool:
        listed = server.admin.get("/stations", online=True).json()["items"]
        offline = server.admin.get("/stations", online=False).json()["items"]
        assert (agent.agent_id in [s["id"] for s in listed]) != (
            agent.agent_id in [s["id"] for s in offline]
        )
        return agent.agent_id in [s["id"] for s in listed]

    assert online()
    assert listed_online()
    assert agent.getjobs().status_code == 200  # a check-in noted before the goodbye
    now = int(time.time())
    goodbye = [{"id": "bye-1", "type": "SHUTTING_DOWN", "data": {"ts": now}}]
    assert post_events(server, agent, goodbye).json()["stored"] == 1
    assert not online()
    server.flush_presence()
    assert not online()
    assert not listed_online()
    (event,) = events(server, type="DISCONNECTED", station_id=agent.agent_id)
    assert event["origin"] == "server"
    assert len(events(server, type="station_connected", station_id=agent.agent_id)) == 1
    # A retried batch is a duplicate: no second DISCONNECTED.
    assert post_events(server, agent, goodbye).json()["duplicates"] == 1
    assert len(events(server, type="DISCONNECTED", station_id=agent.agent_id)) == 1
    # A spooled goodbye from an earlier run, followed by its start, is not a shutdown.
    restart = [
        {"id": "bye-0", "type": "SHUTTING_DOWN", "data": {"ts": now - 60}},
        {"id": "hello-1", "type": "STARTING_UP", "data": {"ts": now}},
    ]
    assert post_events(server, agent, restart).json()["stored"] == 2
    assert online()
    server.flush_presence()
    assert online()
    assert listed_online()
    assert len(events(server, type="station_connected", station_id=agent.agent_id)) == 2
    assert len(events(server, type="DISCONNECTED", station_id=agent.agent_id)) == 1


def test_admin_changes_are_audit_events(server: Server) -> None:
    before = len(events(server, type="audit"))
    assert server.admin.patch("/settings", {"getjobs_limit": 5}).status_code == 200
    key = server.admin.post("/enrollment-keys", {"uses": 2, "expires_in": 600})
    assert key.status_code == 201
    audit = sorted(events(server, type="audit"), key=lambda e: e["seq"])[before:]
    actions = [e["data"]["action"] for e in audit]
    assert actions[0] == "settings.update"
    assert len(actions) == 2
    settings = audit[0]
    assert settings["station_id"] is None
    assert settings["origin"] == "server"
    assert settings["severity"] == "Notice"
    data = settings["data"]
    assert data.pop("time").endswith("Z")
    assert data == {
        "domain": "settings",
        "action": "settings.update",
        "target": "",
        "detail": '{"getjobs_limit": 5}',
        "user": "admin",
        "result": "Success",
    }
