"""Signed content is each station's own: a station cannot fetch a file its manifests do not
name (another group's), Armadito agents never see the content fields (the cached check-in
included), shared and missing credentials are refused, and viewers change nothing."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conftest import Server, ServerFactory
from tests.server.test_content_api import YARA, GarrisonAgent, add, garrison_agent, group_with
from tests.support import assert_json_error

HASHES = f"{'c' * 64}:*:Only.Lab\n"


def test_a_station_cannot_fetch_another_groups_file(server: Server) -> None:
    outsider, _ = garrison_agent(server)
    insider, _ = garrison_agent(server)
    group_with(server, "lab", insider.agent_id)
    assert server.admin.put("/content/assignments/default", {"rules": []}).status_code == 200
    assert server.admin.put("/groups/lab/content", {"rules": None}).status_code == 200
    lab = add(server, "hashes", "lab-hashes", HASHES).json()
    assert insider.get(f"content/files/{lab['sha256']}").status_code == 200
    refused = outsider.get(f"content/files/{lab['sha256']}")
    assert_json_error(refused, 404)
    # Not through a delta either: the base must be a file of the station's own manifests
    # ... and the target too.
    assert_json_error(outsider.get(f"content/files/{lab['sha256']}?base={lab['sha256']}"), 404)
    assert outsider.get("content/manifest").json()["manifest"]["files"] == []


def test_content_routes_need_the_stations_own_token(server_factory: ServerFactory) -> None:
    server = server_factory(agent_basic_user="fleet", agent_basic_password="fleet-secret")
    add(server, "yara", "demo", YARA)
    agent, _ = garrison_agent(server)
    envelope = agent.get("content/manifest").json()
    sha = envelope["manifest"]["files"][0]["sha256"]
    client = server.client
    for path in ("/api/content/manifest", f"/api/content/files/{sha}"):
        assert_json_error(client.get(path), 401)
        assert_json_error(client.get(path, headers={"Authorization": "Bearer nope"}), 401)
        shared = base64.b64encode(b"fleet:fleet-secret").decode()
        assert_json_error(client.get(path, headers={"Authorization": f"Basic {shared}"}), 403)


@pytest.mark.parametrize("token_cache_seconds", [120.0])
def test_armadito_agents_never_see_content_fields_even_on_the_cached_check_in(
    server: Server,
) -> None:
    armadito = server.enrolled_agent()
    agent, _ = garrison_agent(server)
    add(server, "yara", "demo", YARA)
    for _ in range(3):  # the first check-in fills the caches, the next ones use them
        plain = armadito.getjobs()
        assert plain.status_code == 200
        assert plain.json() == {"jobs": []}
        assert "content" in agent.getjobs().json()
    assert_json_error(
        armadito.client.get(armadito.url("content/manifest"), headers=armadito.headers()), 404
    )


@pytest.mark.parametrize("token_cache_seconds", [120.0])
def test_the_cached_check_in_sees_a_new_serial_at_once(server: Server) -> None:
    agent, _ = garrison_agent(server)
    first = agent.getjobs().json()["content"]
    content = server.ctx.content
    computed: list[int] = []
    compute = content.field

    def counted(station_id: int) -> dict[str, Any] | None:
        computed.append(station_id)
        return compute(station_id)

    content.field = counted  # type: ignore[method-assign]
    for _ in range(3):
        assert agent.getjobs().json()["content"] == first
    assert computed == []  # cached: no query per poll
    add(server, "yara", "demo", YARA)
    second = agent.getjobs().json()["content"]
    assert second["serial"] > first["serial"]
    assert computed == [agent.agent_id]  # the serial moved: computed once again
    assert agent.getjobs().json()["content"] == second
    assert computed == [agent.agent_id]
    manifest = agent.get("content/manifest")
    assert manifest.headers["etag"] == f'"{second["manifest_sha256"]}"'


def test_a_viewer_or_operator_changes_no_content(server: Server) -> None:
    add(server, "yara", "demo", YARA)
    assert server.admin.post("/groups", {"name": "g"}).status_code == 201
    for role in ("viewer", "operator"):
        who = server.admin.as_role(f"content-{role}", role)
        assert_json_error(who.post("/rules", {"kind": "yara", "name": "x", "content": YARA}), 403)
        assert_json_error(who.put("/content/assignments/default", {"rules": None}), 403)
        assert_json_error(who.put("/groups/g/content", {"rules": None}), 403)
        assert_json_error(who.delete("/groups/g/content"), 403)
        assert_json_error(who.post("/content-key/rotate", {"overlap_hours": 1}), 403)
        assert who.get("/rules/demo").status_code == 200
    assert [r["version"] for r in server.admin.get("/rules").json()] == [1]
    assert len(server.admin.get("/content").json()["keys"]) == 1


def test_content_inputs_are_checked(server: Server) -> None:
    bad_name = add(server, "yara", "../etc", YARA)
    assert_json_error(bad_name, 422)
    assert_json_error(add(server, "exe", "x", YARA), 422)
    too_long = server.admin.post(
        "/rules", {"kind": "yara", "name": "x", "content": YARA, "comment": "c" * 2000}
    )
    assert_json_error(too_long, 422)
    assert_json_error(server.admin.post("/content-key/rotate", {"overlap_hours": -1}), 422)
    assert_json_error(
        server.admin.put("/content/assignments/default", {"rules": [{"name": "none"}]}), 404
    )
    agent: GarrisonAgent
    agent, _ = garrison_agent(server)
    assert_json_error(agent.get("content/files/" + "A" * 64), 422)
    add(server, "yara", "demo", YARA)
    sha = agent.get("content/manifest").json()["manifest"]["files"][0]["sha256"]
    assert_json_error(agent.get(f"content/files/{sha}", Range="bytes=0-10"), 422)
    assert agent.get(f"content/files/{sha}", Range="bytes=99999-").status_code == 416
