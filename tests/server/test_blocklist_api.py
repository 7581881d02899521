"""The fleet block list (``/admin/v1/blocklist``) over the signed content, on both
backends: each change is a new version of the ``blocklist`` rule set that every scope gets
(a group assignment naming other rule sets included), bad input is refused with a JSON
error, a hash the agents report they run on is refused, and viewers change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Server
from tests.server.test_content_api import add, garrison_agent, group_with
from tests.support import assert_json_error

SHA = "ab" * 32
OTHER = "cd" * 32
PROTECTED = "ef" * 32


def _state_with_protected(digests: str) -> dict[str, Any]:
    return {
        "dbinfo": {"global_status": "up-to-date", "global_update_timestamp": 1500000000,
                   "modules": []},
        "avdetails": [{"attr": "protected_sha256", "value": digests}],
    }  # fmt: skip


def test_add_list_remove_make_versions_every_station_gets(server: Server) -> None:
    agent, _ = garrison_agent(server)
    group_with(server, "lab", agent.agent_id)
    add(server, "hashes", "other", f"{'1' * 64}:*:Other\n")
    # The group's assignment names only "other": the fleet block list still reaches it.
    assert (
        server.admin.put("/groups/lab/content", {"rules": [{"name": "other"}]}).status_code == 200
    )
    added = server.admin.post("/blocklist", {"sha256": SHA.upper(), "comment": "bad tool"})
    assert added.status_code == 201, added.text
    assert added.json()["sha256"] == SHA
    assert added.json()["version"] == 1
    assert server.admin.post("/blocklist", {"sha256": OTHER}).status_code == 201
    listed = server.admin.get("/blocklist").json()
    assert listed["version"] == 2
    assert [(e["sha256"], e["comment"], e["added_by"]) for e in listed["entries"]] == [
        (SHA, "bad tool", "admin"),
        (OTHER, "", "admin"),
    ]
    files = agent.get("content/manifest").json()["manifest"]["files"]
    assert {f["ruleset"]: f["version"] for f in files} == {"blocklist": 2, "other": 1}
    content = server.admin.get("/rules/blocklist").json()
    assert content["kind"] == "blocklist"
    assert content["file"] == "blocklist.blk"

    removed = server.admin.delete(f"/blocklist/{SHA}")
    assert removed.status_code == 200, removed.text
    assert removed.json()["version"] == 3
    assert [e["sha256"] for e in server.admin.get("/blocklist").json()["entries"]] == [OTHER]
    assert server.admin.delete(f"/blocklist/{OTHER}").status_code == 200
    assert server.admin.get("/blocklist").json()["entries"] == []  # an empty list: version 4
    assert server.admin.get("/rules/blocklist").json()["version"] == 4
    audit = server.admin.get("/audit", params={"limit": 100}).json()
    actions = [item["action"] for item in audit]
    assert "blocklist.add" in actions
    assert "blocklist.remove" in actions


@pytest.mark.parametrize(
    "body",
    [
        {"sha256": "abc"},
        {"sha256": "z" * 64},
        {"sha256": "a" * 40},
        {"sha256": SHA, "comment": "two\nlines"},
        {"sha256": SHA, "extra": 1},
        {"comment": "no hash"},
    ],
)
def test_bad_input_is_refused_with_a_json_error(server: Server, body: dict[str, Any]) -> None:
    response = server.admin.post("/blocklist", body)
    assert response.status_code in (400, 422), response.text
    assert_json_error(response, response.status_code)
    assert server.admin.get("/blocklist").json()["entries"] == []


def test_duplicates_and_unknown_hashes(server: Server) -> None:
    assert server.admin.post("/blocklist", {"sha256": SHA}).status_code == 201
    assert_json_error(server.admin.post("/blocklist", {"sha256": SHA}), 409, "conflict")
    assert_json_error(server.admin.delete(f"/blocklist/{OTHER}"), 404, "not_found")
    assert_json_error(server.admin.delete("/blocklist/nothex"), 422)


def test_a_hash_an_agent_runs_on_is_refused(server: Server) -> None:
    agent, _ = garrison_agent(server)
    assert agent.state(_state_with_protected(f"{PROTECTED};{OTHER}")).status_code < 300
    refused = server.admin.post("/blocklist", {"sha256": PROTECTED, "comment": "python"})
    body = assert_json_error(refused, 409, "protected_hash")
    assert "does not block itself" in body["message"]
    assert "1 station" in body["message"]
    assert server.admin.get("/blocklist").json()["entries"] == []
    assert server.admin.post("/blocklist", {"sha256": SHA}).status_code == 201


def test_viewers_read_and_change_nothing(server: Server) -> None:
    assert server.admin.post("/blocklist", {"sha256": SHA}).status_code == 201
    viewer = server.admin.as_role("vera", "viewer")
    assert viewer.get("/blocklist").status_code == 200
    assert_json_error(viewer.post("/blocklist", {"sha256": OTHER}), 403)
    assert_json_error(viewer.delete(f"/blocklist/{SHA}"), 403)
    assert [e["sha256"] for e in server.admin.get("/blocklist").json()["entries"]] == [SHA]
