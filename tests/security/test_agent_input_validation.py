"""Agent API inputs that answered 500 (issue 22, items 5 and 8), on SQLite and PostgreSQL.

Each request is either refused with a 4xx naming the field (a JSON error body) or accepted
with the value normalised where an agent needs acceptance (its identity, a job's failure
message): never a 500, which also drops the keep-alive connection.  The rules per field are
in docs/agent-api.md ("Input validation") and docs/security.md.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any

import httpx
import pytest

from garrison.server.stations.models import Station
from tests.conftest import Server
from tests.events.helpers import SHA256, events, post_events
from tests.security.checks import create_scan_job, target_of
from tests.support import ArmaditoAgent, assert_json_error

UNKNOWN_KEY = "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZ9"


class IdentityAgent(ArmaditoAgent):
    """An agent whose envelope carries Garrison's top-level identity fields as given."""

    def __init__(self, client: Any, extra: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.extra = extra

    def envelope(self, task: str, obj: Any) -> dict[str, Any]:
        return {**super().envelope(task, obj), **self.extra}


def refused(response: httpx.Response, field: str, status: int = 422) -> dict[str, Any]:
    body = assert_json_error(response, status)
    assert body.get("field") == field, body
    return body


def alert(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Eicar-Test-Signature",
        "filepath": "/tmp/eicar.com",
        "action": "alert",
        "module_name": "clamav",
        "detection_time": 1700000000,
        **overrides,
    }


def station_row(server: Server, station_id: int) -> Station:
    with server.db.reading() as session:
        station = session.get(Station, station_id)
        assert station is not None
        session.expunge(station)
        return station


# -- Alerts ---------------------------------------------------------------------------------


def test_an_alert_name_with_nul_is_refused_naming_the_field(server: Server) -> None:
    agent = server.enrolled_agent()
    response = agent.alerts([alert(name="Eicar\u0000Test")])
    refused(response, "task.obj.alerts[0].name")
    assert agent.alerts([alert()]).status_code == 200


def test_an_alert_sha256_that_is_not_hex_is_refused(server: Server) -> None:
    agent = server.enrolled_agent()
    response = agent.alerts([alert(info={"sha256": "z" * 64})])
    refused(response, "task.obj.alerts[0].info.sha256")
    assert agent.alerts([alert(info={"sha256": SHA256.upper()})]).status_code == 200


def test_alert_info_nested_too_deep_is_refused(server: Server) -> None:
    agent = server.enrolled_agent()
    nested: Any = "x"
    for _ in range(300):
        nested = {"a": nested}
    response = agent.alerts([alert(info=nested)])
    assert_json_error(response, 400, "malformed_request")


# -- State ----------------------------------------------------------------------------------


def state(modules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "dbinfo": {"global_status": "up-to-date", "global_update_timestamp": 1, "modules": modules},
        "avdetails": [],
    }


def test_a_state_with_too_many_modules_is_refused(server: Server) -> None:
    agent = server.enrolled_agent()
    modules = [{"name": f"m{i}", "mod_status": "up-to-date"} for i in range(1001)]
    refused(agent.state(state(modules)), "task.obj.dbinfo.modules")
    assert agent.state(state(modules[:1000])).status_code == 200


def test_a_state_module_name_with_nul_is_refused(server: Server) -> None:
    agent = server.enrolled_agent()
    response = agent.state(state([{"name": "clam\u0000av", "mod_status": "up-to-date"}]))
    refused(response, "task.obj.dbinfo.modules[0].name")


# -- Runjobs --------------------------------------------------------------------------------


def test_a_failure_message_decoding_to_nul_still_fails_the_job(server: Server) -> None:
    agent = server.enrolled_agent()
    job_id = create_scan_job(server, agent.agent_id)
    assert agent.getjobs().status_code == 200
    message = base64.encodebytes(b"scan\x00failed").decode()
    response = agent.post(
        "jobs", "Runjobs", {"job_id": job_id, "code": 1, "message": message, "end_time": 1}
    )
    assert response.status_code == 200, response.text
    target = target_of(server, job_id, agent.agent_id)
    assert target["status"] == "failed", target
    assert "\x00" not in (target.get("message") or "")
    assert "scan" in target["message"]
    assert "failed" in target["message"]


# -- Enrollment -----------------------------------------------------------------------------


def test_an_unusual_mac_is_accepted_as_given(server: Server) -> None:
    agent = IdentityAgent(server.client, {"mac": "not-a-mac", "hostname": "pc-1"})
    response = agent.enroll(server.first_key)
    assert response.status_code == 200, response.text
    assert station_row(server, agent.agent_id).mac == "not-a-mac"


def test_a_long_mac_and_platform_are_cut_to_their_columns(server: Server) -> None:
    extra = {"mac": "m" * 200, "platform": "p" * 300, "hostname": "h" * 400}
    agent = IdentityAgent(server.client, extra)
    response = agent.enroll(server.first_key)
    assert response.status_code == 200, response.text
    row = station_row(server, agent.agent_id)
    # The columns' lengths (64, 128, 255): PostgreSQL refused the 255 characters kept before.
    assert (len(row.mac), len(row.os_platform), len(row.hostname)) == (64, 128, 255)
    assert row.mac == "m" * 64


def test_nul_in_hostname_and_os_is_removed_at_enrollment(server: Server) -> None:
    agent = IdentityAgent(server.client, {"hostname": "pc\u0000-1", "platform": "Lin\u0000ux"})
    body = agent.envelope("Enrollment", {"key": server.first_key})
    body["task"]["antivirus"]["os_info"]["name"] = "lin\u0000ux"
    response = server.client.post("/api/agents", content=json.dumps(body), headers=agent.headers())
    assert response.status_code == 200, response.text
    row = station_row(server, response.json()["agent_id"])
    assert (row.hostname, row.os_platform, row.os_name) == ("pc-1", "Linux", "linux")


def test_a_refused_enrollment_with_nul_in_the_hostname_is_recorded(server: Server) -> None:
    agent = IdentityAgent(server.client, {"hostname": "evil\u0000host"})
    response = agent.enroll(UNKNOWN_KEY)
    assert_json_error(response, 403, "enrollment_refused")
    failed = events(server, type="station_authorization_failed")
    assert len(failed) == 1, failed
    assert failed[0]["data"]["station"] == "evilhost", failed


@pytest.mark.parametrize("name", ["hostname", "platform", "mac"])
def test_an_identity_field_sent_as_an_object_is_refused(server: Server, name: str) -> None:
    agent = IdentityAgent(server.client, {name: {"a": 1}})
    refused(agent.enroll(server.first_key), name)


# -- Events ---------------------------------------------------------------------------------


def test_event_data_nested_too_deep_is_refused(server: Server) -> None:
    agent = server.enrolled_agent()
    nested: Any = 1
    for _ in range(300):
        nested = {"a": nested}
    item = {"id": "deep", "type": "process_started", "data": nested}
    response = post_events(server, agent, [item])
    assert_json_error(response, 400, "malformed_request")


# -- gzip bodies of POST /api/events (item 7) -----------------------------------------------


def process_started(uid: str) -> dict[str, Any]:
    return {
        "id": uid,
        "type": "process_started",
        "data": {"time": 1700000000, "unique_pid": "u7", "pid": 7, "file_path": "/usr/bin/nc"},
    }


def batch(*uids: str) -> bytes:
    return json.dumps([process_started(uid) for uid in uids]).encode()


def stored_ids(server: Server) -> list[str]:
    return sorted(e["id"] for e in events(server, type="process_started"))


def test_a_whole_gzip_body_is_stored(server: Server) -> None:
    agent = server.enrolled_agent()
    body = gzip.compress(batch("a", "b"))
    response = post_events(server, agent, body, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert stored_ids(server) == ["a", "b"]


def test_a_two_member_gzip_body_is_refused_and_nothing_stored(server: Server) -> None:
    agent = server.enrolled_agent()
    body = gzip.compress(batch("a")) + gzip.compress(batch("b"))
    response = post_events(server, agent, body, **{"Content-Encoding": "gzip"})
    assert_json_error(response, 400, "malformed_request")
    assert stored_ids(server) == []


def test_a_gzip_stream_cut_at_a_flush_point_is_refused_and_nothing_stored(
    server: Server,
) -> None:
    agent = server.enrolled_agent()
    compressor = zlib.compressobj(wbits=31)
    cut = compressor.compress(batch("a", "b", "c")) + compressor.flush(zlib.Z_SYNC_FLUSH)
    # A complete JSON array inflates from it: only the missing trailer (CRC, length) shows.
    assert json.loads(zlib.decompressobj(wbits=31).decompress(cut))
    response = post_events(server, agent, cut, **{"Content-Encoding": "gzip"})
    assert_json_error(response, 400, "malformed_request")
    assert stored_ids(server) == []


def test_gzip_with_trailing_garbage_is_refused(server: Server) -> None:
    agent = server.enrolled_agent()
    body = gzip.compress(batch("a")) + b"garbage"
    response = post_events(server, agent, body, **{"Content-Encoding": "gzip"})
    assert_json_error(response, 400, "malformed_request")
    assert stored_ids(server) == []


@pytest.mark.parametrize("encoding", ["deflate", "br", "gzip, gzip"])
def test_other_content_encodings_are_refused(server: Server, encoding: str) -> None:
    agent = server.enrolled_agent()
    body = zlib.compress(batch("a"))
    response = post_events(server, agent, body, **{"Content-Encoding": encoding})
    assert_json_error(response, 400, "malformed_request")
    assert stored_ids(server) == []


def test_an_event_id_with_nul_is_refused_by_item(server: Server) -> None:
    agent = server.enrolled_agent()
    response = post_events(server, agent, [process_started("a\u0000b"), process_started("ok")])
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["status"] == "refused", results
    assert "id" in results[0]["error"], results
    assert stored_ids(server) == ["ok"]


@pytest.mark.parametrize("pid", [1e308, -1e300, 2**64, "99999999999999999999"])
def test_an_event_integer_beyond_64_bits_is_refused_by_item(server: Server, pid: Any) -> None:
    agent = server.enrolled_agent()
    huge = process_started("huge")
    huge["data"]["pid"] = pid
    response = post_events(server, agent, [huge, process_started("ok")])
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["status"] == "refused", results
    assert "pid" in results[0]["error"], results
    assert stored_ids(server) == ["ok"]
