"""Bad input on POST /api/events: refused per event with its index and reason while the
valid events of the same batch are stored; refused per request with a JSON error."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest

from tests.conftest import Server, ServerFactory
from tests.events.helpers import events, post_events
from tests.support import ArmaditoAgent, assert_json_error, sqlite_only


def good(uid: str) -> dict[str, Any]:
    return {"id": uid, "type": "amsi_scan", "data": {"time": 1700000000, "content": "Write-Host"}}


def test_each_bad_event_is_refused_with_its_index_and_reason(server: Server) -> None:
    agent = server.enrolled_agent()
    big = "A" * 60_000
    batch: list[Any] = [
        good("ok-0"),
        {"id": "bad-1", "type": "no_such_type", "data": {}},
        {"id": "bad-2", "type": "process_started", "data": {"time": 1700000000}},
        {
            "id": "bad-3",
            "type": "process_started",
            "data": {"time": 1700000000, "unique_pid": "1", "pid": "one"},
        },
        {"id": "bad-4", "type": "amsi_scan", "data": {"time": "yesterday", "content": "x"}},
        {
            "id": "bad-5",
            "type": "process_started",
            "data": {
                "time": 1700000000,
                "unique_pid": "1",
                "command_line": big,
                "file_path": big,
                "full_name": big,
                "parent_path": big,
                "parent_command_line": big,
            },
        },
        {"id": "bad-6", "type": "station_created", "data": {"id": 1, "state": 0}},
        good("ok-7"),
        {"id": "bad-8", "type": "amsi_scan", "data": {"time": 1, "content": "x", "extra": 1}},
        "not an object",
        {"id": "bad-10", "data": {"time": 1}},
        {"id": 11, "type": "amsi_scan", "data": {"time": 1, "content": "x"}},
        {"id": "bad-12", "type": "amsi_scan", "data": ["not", "an", "object"]},
        {
            "routing": {"event_type": "DISCONNECTED", "event_id": "bad-13"},
            "event": {"DISCONNECTED": {}, "ts": 1455674775},
        },
        {
            "id": "bad-14",
            "type": "amsi_scan",
            "time": "tomorrow",
            "data": {"time": 1, "content": "x"},
        },
        good("ok-15"),
    ]
    response = post_events(server, agent, batch)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["stored"], body["duplicates"], body["refused"]) == (3, 0, 13)
    results = {r["index"]: r for r in body["results"]}
    assert sorted(results) == list(range(16))
    assert {i for i, r in results.items() if r["status"] == "stored"} == {0, 7, 15}
    errors = {i: r.get("error") for i, r in results.items() if r["status"] == "refused"}
    assert errors == {
        1: "type: unknown event type 'no_such_type'",
        2: "unique_pid: is required",
        3: "pid: must be an integer, got 'one'",
        4: "time: cannot parse timestamp 'yesterday'",
        5: "event is larger than 262144 bytes",
        6: "type: station_created is produced by the server only",
        8: "extra: is not a field of amsi_scan",
        9: "each event must be a JSON object",
        10: "type: is required",
        11: "id: must be a string of 1 to 48 characters",
        12: "data: must be a JSON object",
        13: "type: DISCONNECTED is produced by the server only",
        14: "time: cannot parse timestamp 'tomorrow'",
    }
    stored = [e["id"] for e in events(server) if e["origin"] == "station"]
    assert sorted(stored) == ["ok-0", "ok-15", "ok-7"]


SERVER_ONLY = [
    "station_created",
    "station_deleted",
    "station_connected",
    "station_authorization_failed",
    "station_authorization_in_progress",
    "station_datetime_error",
    "DISCONNECTED",
]


@sqlite_only
def test_no_server_only_type_can_be_sent_by_an_agent(server: Server) -> None:
    agent = server.enrolled_agent()
    before = len(events(server))
    batch = [{"id": f"x{i}", "type": t, "data": {"id": 1}} for i, t in enumerate(SERVER_ONLY)]
    response = post_events(server, agent, batch)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [
        {"index": i, "status": "refused", "error": f"type: {t} is produced by the server only"}
        for i, t in enumerate(SERVER_ONLY)
    ]
    assert len(events(server)) == before


def test_a_batch_of_only_bad_events_stores_nothing(server: Server) -> None:
    agent = server.enrolled_agent()
    response = post_events(server, agent, [{"type": "nope"}, {"type": "nope"}])
    assert response.status_code == 200
    assert response.json()["stored"] == 0
    assert response.json()["refused"] == 2
    assert [e for e in events(server) if e["origin"] == "station"] == []


@sqlite_only
def test_no_station_credential_is_401_json(server: Server) -> None:
    response = server.client.post("/api/events", content=json.dumps([good("a")]))
    assert_json_error(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"].startswith("Basic")
    bad = server.client.post(
        "/api/events",
        content=json.dumps([good("a")]),
        headers={"Authorization": "Bearer gst_not-a-real-token"},
    )
    assert_json_error(bad, 401)
    admin = server.client.post(
        "/api/events", content=json.dumps([good("a")]), headers=server.admin.headers
    )
    assert_json_error(admin, 401)
    assert [e for e in events(server) if e["origin"] == "station"] == []


@sqlite_only
def test_a_fleet_wide_basic_credential_cannot_send_events(server_factory: ServerFactory) -> None:
    server: Server = server_factory(agent_basic_user="fleet", agent_basic_password="s3cret-pw")
    agent = ArmaditoAgent(server.client, basic=("fleet", "s3cret-pw"))
    assert agent.enroll(server.first_key).status_code == 200
    response = server.client.post(
        "/api/events", content=json.dumps([good("a")]), headers=agent.headers()
    )
    assert_json_error(response, 403)
    assert [e for e in events(server) if e["origin"] == "station"] == []


MALFORMED = [
    b"",
    b"   ",
    b"[1, 2",
    b"{not json",
    b'[{"type": "amsi_scan"}] trailing',
    b'{"a": 1}\n{oops',
]


@sqlite_only
def test_a_malformed_body_is_400_json(server: Server) -> None:
    agent = server.enrolled_agent()
    for body in MALFORMED:
        response = post_events(server, agent, body)
        assert_json_error(response, 400)
    assert [e for e in events(server) if e["origin"] == "station"] == []


@sqlite_only
def test_a_json_value_that_is_not_a_list_of_events_is_refused(server: Server) -> None:
    agent = server.enrolled_agent()
    # Not an array: read as one NDJSON line holding one (bad) event.
    response = post_events(server, agent, b'"just a string"')
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [
        {"index": 0, "status": "refused", "error": "each event must be a JSON object"}
    ]


@sqlite_only
def test_a_gzip_bomb_is_400_and_the_server_goes_on(server: Server) -> None:
    agent = server.enrolled_agent()
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    bomb = b"".join(compressor.compress(chunk) for _ in range(50)) + compressor.flush()
    assert len(bomb) < 100_000  # 50 MB of zeros
    response = post_events(server, agent, bomb, **{"Content-Encoding": "gzip"})
    body = assert_json_error(response, 400)
    assert "larger than" in body["error"]
    # The server is fine and the same agent can go on.
    assert server.client.get("/admin/v1/health").status_code == 200
    ok = post_events(
        server,
        agent,
        gzip.compress(json.dumps([good("after")]).encode()),
        **{"Content-Encoding": "gzip"},
    )
    assert ok.status_code == 200
    assert ok.json()["stored"] == 1


@sqlite_only
def test_a_body_that_is_not_gzip_is_400(server: Server) -> None:
    agent = server.enrolled_agent()
    response = post_events(server, agent, b"[not gzip]", **{"Content-Encoding": "gzip"})
    body = assert_json_error(response, 400)
    assert body["error"] == "body is not valid gzip"


@sqlite_only
def test_an_unsupported_content_encoding_is_400(server: Server) -> None:
    agent = server.enrolled_agent()
    response = post_events(server, agent, b"[]", **{"Content-Encoding": "br"})
    assert_json_error(response, 400)


@sqlite_only
def test_too_many_events_in_one_request_is_400(server: Server) -> None:
    agent = server.enrolled_agent()
    item = json.dumps({"type": "nope"}).encode()
    response = post_events(
        server,
        agent,
        b"\n".join([item] * 10_001),
        **{"Content-Type": "application/x-ndjson"},
    )
    body = assert_json_error(response, 400)
    assert body["error"] == "at most 10000 events per request"


def test_a_time_outside_the_utc_range_is_refused_per_event(server: Server) -> None:
    agent = server.enrolled_agent()
    batch = [
        {
            "id": "y1",
            "type": "amsi_scan",
            "data": {"time": "0001-01-01T00:00:00+01:00", "content": "x"},
        },
        good("ok-1"),
        {
            "routing": {
                "event_type": "STARTING_UP",
                "event_id": "y2",
                "event_time": "9999-12-31T23:00:00-05:00",
            },
            "event": {"ts": 1},
        },
    ]
    response = post_events(server, agent, batch)
    assert response.status_code == 200, response.text
    statuses = [(r["index"], r["status"]) for r in response.json()["results"]]
    assert statuses == [(0, "refused"), (1, "stored"), (2, "refused")]
    assert [e["id"] for e in events(server) if e["origin"] == "station"] == ["ok-1"]


def test_a_nul_character_in_a_searchable_field(
    server: Server, request: pytest.FixtureRequest
) -> None:
    agent = server.enrolled_agent()
    batch = [
        {"id": "z1", "type": "amsi_scan", "data": {"time": 1, "content": "a\u0000b"}},
        {
            "id": "z2",
            "type": "amsi_scan",
            "data": {"time": 1, "content": "x", "user": "al\u0000ice"},
        },
        good("ok-3"),
    ]
    response = post_events(server, agent, batch)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    # NUL is refused in any text (PostgreSQL cannot store it), per event, never the batch.
    assert [(r["index"], r["status"]) for r in results] == [
        (0, "refused"),
        (1, "refused"),
        (2, "stored"),
    ]
    assert results[0]["error"] == "content: must not contain NUL characters"
    assert results[1]["error"] == "user: must not contain NUL characters"
    kept = sorted(e["id"] for e in events(server) if e["origin"] == "station")
    assert kept == ["ok-3"]
