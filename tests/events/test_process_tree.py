"""GET /admin/v1/stations/{id}/process-tree, and the unique_pid / parent_unique_pid
search terms it walks (both backends)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from garrison.server.events.models import EventTerm
from tests.conftest import Server
from tests.events.helpers import events, garrison_agent, post_events
from tests.support import assert_json_error

T0 = 1_790_000_000
BOOT = "8c1e29a4-7b7e-4c8e-9a55-0d3f6f1e2b10"
ROOT = f"{BOOT}-100-5000"  # a shell; its parent (pid 1) was never reported
CHILD = f"{BOOT}-200-5100"
GRANDCHILD = f"{BOOT}-300-5200"
LONER = f"{BOOT}-400-5300"  # another process whose parent is unknown
UNKNOWN_PARENT = f"{BOOT}-1-10"


def started(uid: str, pid: int, parent: str, ppid: int, path: str, at: int) -> dict[str, Any]:
    return {
        "id": f"s-{uid}",
        "type": "process_started",
        "data": {
            "time": at,
            "unique_pid": uid,
            "pid": pid,
            "parent_unique_pid": parent,
            "parent_pid": ppid,
            "file_path": path,
            "file_name": path.rsplit("/", 1)[-1],
            "command_line": f"{path} --run {pid}",
            "user": "alice",
            "start_time": at,
        },
    }


def stopped(uid: str, pid: int, parent: str, at: int, code: int) -> dict[str, Any]:
    return {
        "id": f"e-{uid}",
        "type": "process_stopped",
        "data": {
            "time": at,
            "unique_pid": uid,
            "pid": pid,
            "parent_unique_pid": parent,
            "end_time": at,
            "exit_code": code,
        },
    }


SEED = [
    started(ROOT, 100, UNKNOWN_PARENT, 1, "/bin/bash", T0),
    started(CHILD, 200, ROOT, 100, "/usr/bin/make", T0 + 1),
    started(GRANDCHILD, 300, CHILD, 200, "/usr/bin/cc", T0 + 2),
    stopped(CHILD, 200, ROOT, T0 + 5, 3),
    started(LONER, 400, UNKNOWN_PARENT, 1, "/usr/sbin/cron", T0 + 3),
]


@pytest.fixture
def station(server: Server) -> int:
    agent = garrison_agent(server)
    response = post_events(server, agent, SEED)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == len(SEED)
    # Another station with the same UniquePIDs (a cloned machine): never mixed in.
    other = garrison_agent(server)
    twin = [started(GRANDCHILD.replace("300", "301"), 301, ROOT, 100, "/bin/evil", T0 + 4)]
    assert post_events(server, other, twin).status_code == 200
    return agent.agent_id


def tree(server: Server, station_id: int, **params: Any) -> httpx.Response:
    response: httpx.Response = server.client.get(
        f"/admin/v1/stations/{station_id}/process-tree",
        params=params,
        headers=server.admin.headers,
    )
    return response


def walk(nodes: list[dict[str, Any]], depth: int = 0) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in nodes:
        out.append((depth, node["unique_pid"]))
        out += walk(node["children"], depth + 1)
    return out


def test_the_tree_from_a_root_links_children_by_unique_pid(server: Server, station: int) -> None:
    response = tree(server, station, root=ROOT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert walk(body["roots"]) == [(0, ROOT), (1, CHILD), (2, GRANDCHILD)]
    assert body["nodes"] == 3
    assert body["truncated"] is False
    assert body["reason"] is None
    root = body["roots"][0]
    assert root["pid"] == 100
    assert root["path"] == "/bin/bash"
    assert root["command_line"] == "/bin/bash --run 100"
    assert root["user"] == "alice"
    assert root["parent_unique_pid"] == UNKNOWN_PARENT
    assert root["end_time"] is None
    child = root["children"][0]
    assert child["path"] == "/usr/bin/make"
    assert child["exit_code"] == 3
    assert child["start_time"].startswith("2026-09-21T")
    assert child["end_time"] > child["start_time"]
    assert child["execs"] == 1
    assert child["children"][0]["exit_code"] is None  # the grandchild still runs


def test_the_whole_tree_makes_a_root_of_every_process_whose_parent_is_unknown(
    server: Server, station: int
) -> None:
    body = tree(server, station).json()
    assert walk(body["roots"]) == [(0, ROOT), (1, CHILD), (2, GRANDCHILD), (0, LONER)]
    assert body["nodes"] == 4
    # A window: only the events in it (the child's start is outside, its stop inside).
    since = "2026-09-21T14:13:22Z"  # T0 + 2
    window = tree(server, station, since=since).json()
    assert sorted(u for _, u in walk(window["roots"])) == sorted([CHILD, GRANDCHILD, LONER])
    child = next(n for n in window["roots"] if n["unique_pid"] == CHILD)
    assert child["execs"] == 0  # seen only at its stop
    assert child["exit_code"] == 3


def test_the_limit_cuts_the_tree_and_says_so(server: Server, station: int) -> None:
    body = tree(server, station, root=ROOT, limit=2).json()
    assert body["nodes"] == 2
    assert body["truncated"] is True
    assert "limit" in body["reason"]
    assert walk(body["roots"]) == [(0, ROOT), (1, CHILD)]
    whole = tree(server, station, limit=1).json()
    assert whole["nodes"] == 1
    assert whole["truncated"] is True


def test_bad_input(server: Server, station: int) -> None:
    assert_json_error(tree(server, 999_999), 404, "not_found")
    assert_json_error(tree(server, station, root="not a pid!"), 422)
    assert_json_error(tree(server, station, root="x" * 300), 422)
    assert_json_error(tree(server, station, root=f"{BOOT}-999-1"), 404, "not_found")
    assert_json_error(tree(server, station, limit=0), 422)
    assert_json_error(tree(server, station, since="yesterday"), 422)


def test_a_viewer_may_read_the_tree(server: Server, station: int) -> None:
    viewer = server.admin.as_role("tree-reader", "viewer")
    response = viewer.get(f"/stations/{station}/process-tree", root=ROOT)
    assert response.status_code == 200, response.text
    assert server.client.get(f"/admin/v1/stations/{station}/process-tree").status_code == 401


def test_unique_pid_searches_are_indexed_terms(server: Server, station: int) -> None:
    mine = events(server, unique_pid=CHILD, station_id=station)
    assert sorted(e["type"] for e in mine) == ["process_started", "process_stopped"]
    children = events(server, parent_unique_pid=ROOT, type="process_started")
    # Both stations' children of that UniquePID; the station filter keeps one.
    assert len(children) == 2
    mine_only = events(server, parent_unique_pid=ROOT, station_id=station, type="process_started")
    assert [e["data"]["unique_pid"] for e in mine_only] == [CHILD]
    # Found through event_terms, as hash= is: the terms are there, lower-cased.
    with server.db.reading() as session:
        roles = set(session.scalars(select(EventTerm.role).where(EventTerm.value == CHILD.lower())))
    assert roles == {"upid", "pupid"}
    assert events(server, unique_pid=CHILD.upper(), station_id=station)
