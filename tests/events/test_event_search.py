"""GET /admin/v1/events filters and paging, and the IOC sweep."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Server
from tests.events.helpers import MD5, SHA1, SHA256, events, post_events
from tests.support import ArmaditoAgent, assert_json_error, sqlite_only

T0 = 1704067200  # 2024-01-01T00:00:00Z
HOUR = 3600
TELEMETRY = ["process_started", "file_created", "module_loaded", "threat", "amsi_scan"]
OTHER_MD5 = "f" * 32


def fixture_events(a: int, b: int) -> dict[str, list[dict[str, Any]]]:
    """Five telemetry events, one hour apart, e1 oldest; a's are e1, e2, e5."""
    return {
        "a": [
            {
                "id": "e1",
                "type": "process_started",
                "data": {
                    "time": T0,
                    "user": "alice",
                    "unique_pid": "p1",
                    "file_name": "cmd.exe",
                    "file_path": "C:\\Windows\\System32\\cmd.exe",
                    "md5": MD5,
                    "parent_path": "C:\\Windows\\explorer.exe",
                },
            },
            {
                "id": "e2",
                "type": "file_created",
                "data": {
                    "time": T0 + HOUR,
                    "user": "bob",
                    "process_name": "powershell.exe",
                    "file_path": "C:\\Temp\\drop.exe",
                    "sha256": SHA256,
                },
            },
            {
                "id": "e5",
                "type": "amsi_scan",
                "data": {"time": T0 + 4 * HOUR, "user": "ALICE", "content": "IEX(...)"},
            },
        ],
        "b": [
            {
                "id": "e3",
                "type": "module_loaded",
                "data": {
                    "time": T0 + 2 * HOUR,
                    "user": "alice",
                    "dll_name": "evil.dll",
                    "dll_path": "C:\\Temp\\evil.dll",
                    "dll_md5": MD5,
                },
            },
            {
                "id": "e4",
                "type": "threat",
                "data": {
                    "time": T0 + 3 * HOUR,
                    "threat_name": "Win32/Agent",
                    "username": "carol",
                    "processname": "svchost.exe",
                    "hash": SHA1,
                },
            },
        ],
    }


@pytest.fixture
def fleet(server: Server) -> tuple[ArmaditoAgent, ArmaditoAgent]:
    a, b = server.enrolled_agent(), server.enrolled_agent()
    batches = fixture_events(a.agent_id, b.agent_id)
    assert post_events(server, a, batches["a"]).json()["stored"] == 3
    assert post_events(server, b, batches["b"]).json()["stored"] == 2
    return a, b


def ids(server: Server, **params: Any) -> list[str]:
    return [e["id"] for e in events(server, **params)]


def test_station_type_and_time_filters(server: Server, fleet: Any) -> None:
    a, b = fleet
    assert ids(server, station_id=a.agent_id, type=TELEMETRY) == ["e5", "e2", "e1"]
    assert ids(server, station_id=b.agent_id, type=TELEMETRY) == ["e4", "e3"]
    own = events(server, station_id=a.agent_id)
    assert {e["station_id"] for e in own} == {a.agent_id}
    assert sorted(e["type"] for e in own if e["origin"] == "server") == [
        "station_connected",
        "station_created",
    ]
    assert ids(server, type=["process_started", "threat"]) == ["e4", "e1"]
    assert ids(server, type="amsi_scan") == ["e5"]
    assert ids(server, station_id=999_999) == []
    # Time range: since inclusive, until exclusive.
    assert ids(server, type=TELEMETRY, since="2024-01-01T01:00:00Z") == ["e5", "e4", "e3", "e2"]
    assert ids(
        server, type=TELEMETRY, since="2024-01-01T01:00:00Z", until="2024-01-01T03:00:00Z"
    ) == ["e3", "e2"]
    assert ids(server, type=TELEMETRY, until="2024-01-01T00:00:01Z") == ["e1"]
    # A time with an offset means the same instant.
    assert ids(server, type=TELEMETRY, since="2024-01-01T05:00:00+02:00") == ["e5", "e4"]


@sqlite_only
def test_an_unknown_type_is_422(server: Server) -> None:
    body = assert_json_error(server.admin.get("/events", type="no_such_type"), 422)
    assert body["field"] == "type"


def test_hash_process_path_and_user_filters(server: Server, fleet: Any) -> None:
    _, b = fleet
    assert ids(server, hash=MD5) == ["e3", "e1"]
    assert ids(server, hash=MD5.upper()) == ["e3", "e1"]
    assert ids(server, hash=SHA1) == ["e4"]
    assert ids(server, hash=SHA256) == ["e2"]
    assert ids(server, hash=OTHER_MD5) == []
    # Process names (lower-cased), of the acting process.
    assert ids(server, process="powershell.exe") == ["e2"]
    assert ids(server, process="POWERSHELL.EXE") == ["e2"]
    assert ids(server, process="svchost.exe") == ["e4"]
    # The parent of a process start, by name or by path.
    assert ids(server, process="explorer.exe") == ["e1"]
    assert ids(server, process="C:\\Windows\\explorer.exe") == ["e1"]
    assert ids(server, process="nc.exe") == []
    # Paths: full, in any case, or the file name.
    assert ids(server, path="C:\\Temp\\drop.exe") == ["e2"]
    assert ids(server, path="c:\\temp\\drop.exe") == ["e2"]
    assert ids(server, path="drop.exe") == ["e2"]
    assert ids(server, path="evil.dll") == ["e3"]
    assert ids(server, path="C:\\Windows\\System32\\cmd.exe") == ["e1"]
    assert ids(server, path="C:\\Temp") == []
    # Users, in any case, and combined with other filters.
    assert ids(server, user="alice") == ["e5", "e3", "e1"]
    assert ids(server, user="Alice") == ["e5", "e3", "e1"]
    assert ids(server, user="carol") == ["e4"]
    assert ids(server, user="alice", station_id=b.agent_id) == ["e3"]
    assert ids(server, user="alice", hash=MD5) == ["e3", "e1"]
    assert ids(server, user="alice", type="amsi_scan", since="2024-01-01T04:00:00Z") == ["e5"]
    assert ids(server, user="bob", hash=MD5) == []


def test_process_filter_finds_the_started_process_itself(server: Server, fleet: Any) -> None:
    assert ids(server, process="cmd.exe") == ["e1"]


def test_paging_newest_first(server: Server, fleet: Any) -> None:
    def page(offset: int) -> tuple[list[str], int]:
        response = server.admin.get("/events", type=TELEMETRY, limit=2, offset=offset)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["limit"], body["offset"]) == (2, offset)
        return [e["id"] for e in body["items"]], body["total"]

    assert page(0) == (["e5", "e4"], 5)
    assert page(2) == (["e3", "e2"], 5)
    assert page(4) == (["e1"], 5)
    assert page(6) == ([], 5)
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
        assert_json_error(server.admin.get("/events", **bad), 422)


def test_newest_first_by_event_time_not_arrival(server: Server) -> None:
    agent = server.enrolled_agent()
    late = {"id": "late", "type": "amsi_scan", "data": {"time": T0 + 10, "content": "x"}}
    early = {"id": "early", "type": "amsi_scan", "data": {"time": T0, "content": "x"}}
    newest = {"id": "newest", "type": "amsi_scan", "data": {"time": T0 + 20, "content": "x"}}
    post_events(server, agent, [late])
    post_events(server, agent, [early, newest])
    assert ids(server, type="amsi_scan") == ["newest", "late", "early"]


@sqlite_only
def test_a_viewer_may_search_and_anonymous_may_not(server: Server, fleet: Any) -> None:
    viewer = server.admin.as_role("reader", "viewer")
    response = viewer.get("/events", hash=MD5)
    assert response.status_code == 200
    assert [e["id"] for e in response.json()["items"]] == ["e3", "e1"]
    assert_json_error(server.client.get("/admin/v1/events"), 401)
    assert_json_error(server.client.post("/admin/v1/events/ioc-sweep", json={"hashes": [MD5]}), 401)


def sweep(server: Server, hashes: list[str]) -> tuple[list[str], list[int]]:
    response = server.admin.post("/events/ioc-sweep", {"hashes": hashes})
    assert response.status_code == 200, response.text
    body = response.json()
    return [e["id"] for e in body["events"]], body["station_ids"]


def test_ioc_sweep_with_md5_sha1_and_sha256(server: Server, fleet: Any) -> None:
    a, b = fleet
    assert sweep(server, [MD5]) == (["e3", "e1"], sorted([a.agent_id, b.agent_id]))
    assert sweep(server, [SHA1]) == (["e4"], [b.agent_id])
    assert sweep(server, [SHA256.upper()]) == (["e2"], [a.agent_id])
    assert sweep(server, [MD5, SHA1, SHA256, OTHER_MD5]) == (
        ["e4", "e3", "e2", "e1"],
        sorted([a.agent_id, b.agent_id]),
    )
    assert sweep(server, [OTHER_MD5]) == ([], [])


@sqlite_only
def test_a_malformed_hash_is_422(server: Server) -> None:
    for hashes in (["not-a-hash"], ["a" * 33], ["g" * 32], [MD5, "xyz"], [], ["a" * 65]):
        response = server.admin.post("/events/ioc-sweep", {"hashes": hashes})
        body = assert_json_error(response, 422)
        assert body["field"].startswith("hashes"), (hashes, body)


@sqlite_only
def test_an_out_of_range_time_filter_is_answered_in_json(server: Server) -> None:
    for since in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"):
        response = server.client.get(
            "/admin/v1/events", params={"since": since}, headers=server.admin.headers
        )
        assert response.status_code in (200, 422), (since, response.text)
        assert response.headers["content-type"].startswith("application/json")


def test_search_and_sweep_order_events_alike_within_a_second(server: Server) -> None:
    """Newest first by the event's time to the microsecond, then by log position among
    events of one time, in the search and in the IOC sweep alike."""
    agent = server.enrolled_agent()

    def started(uid: str, when: float) -> dict[str, Any]:
        data = {"time": when, "unique_pid": uid, "md5": MD5}
        return {"id": uid, "type": "process_started", "data": data}

    post_events(server, agent, [started("at-.9", T0 + 0.9), started("tie-1", T0 + 0.5)])
    post_events(server, agent, [started("at-.1", T0 + 0.1), started("tie-2", T0 + 0.5)])
    expected = ["at-.9", "tie-2", "tie-1", "at-.1"]
    assert ids(server, hash=MD5) == expected
    assert sweep(server, [MD5])[0] == expected


def test_port_filter_finds_listening_port_events(server: Server) -> None:
    agent = server.enrolled_agent()
    batch = [
        {"id": "p1", "type": "port_listening", "data": {"time": T0, "port": 8080}},
        {"id": "p2", "type": "port_listening", "data": {"time": T0 + 1, "port": 22}},
        {"id": "p3", "type": "port_closed", "data": {"time": T0 + 2, "port": 8080}},
    ]
    assert post_events(server, agent, batch).json()["stored"] == 3
    assert ids(server, port=8080) == ["p3", "p1"]
    assert ids(server, port=8080, type="port_listening") == ["p1"]
    assert ids(server, port=22) == ["p2"]
    assert ids(server, port=443) == []
    body = assert_json_error(server.admin.get("/events", port=70000), 422)
    assert "port" in str(body)
