"""Signed content through the admin API (rule sets, versions, diff, assignments, key
rotation, fleet) and its delivery to Garrison agents (manifest, files, deltas, the Getjobs
and enrollment fields), on both backends.  The wire is CONTENT-WIRE.md's."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from garrison.server.content.signing import canonical, verify
from tests.conftest import Server
from tests.support import ArmaditoAgent, assert_json_error

YARA = 'rule only_this {\n  strings:\n    $a = "garrison-content-test"\n  condition:\n    $a\n}\n'
SHA = "a" * 64
HASHES = "".join(f"{i:064x}:*:Test.Hash.{i}\n" for i in range(200))


@dataclass
class GarrisonAgent(ArmaditoAgent):
    def headers(self) -> dict[str, str]:
        return {**super().headers(), "X-Garrison-Agent": "test"}

    def get(self, path: str, **headers: str) -> httpx.Response:
        return self.client.get(self.url(path), headers={**self.headers(), **headers})


def garrison_agent(server: Server) -> tuple[GarrisonAgent, dict[str, Any]]:
    agent = GarrisonAgent(server.client)
    response = agent.enroll(server.first_key)
    assert response.status_code == 200, response.text
    return agent, response.json()


def add(server: Server, kind: str, name: str, content: str, **extra: Any) -> httpx.Response:
    return server.admin.post("/rules", {"kind": kind, "name": name, "content": content, **extra})


def group_with(server: Server, name: str, *station_ids: int) -> None:
    assert server.admin.post("/groups", {"name": name}).status_code == 201
    response = server.admin.post(f"/groups/{name}/stations", {"add": list(station_ids)})
    assert response.status_code == 200, response.text


def envelope_ok(envelope: dict[str, Any], keys: dict[str, str]) -> bool:
    return verify(keys[envelope["key_id"]], envelope["signature"], envelope["manifest"])


# -- the repository ------------------------------------------------------------------------


def test_rules_are_versioned_and_content_addressed(server: Server) -> None:
    first = add(server, "yara", "demo", YARA, comment="first")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["version"] == 1
    assert body["sha256"] == hashlib.sha256(YARA.encode()).hexdigest()
    assert body["records"] == 1
    assert body["file"] == "demo.yar"
    assert body["author"] == "admin"
    assert body["comment"] == "first"

    again = add(server, "yara", "demo", YARA)
    assert again.status_code == 200
    assert again.json()["version"] == 1

    second = add(server, "yara", "demo", YARA.replace("only_this", "renamed"))
    assert second.status_code == 201
    assert second.json()["version"] == 2

    listed = server.admin.get("/rules").json()
    assert [(r["name"], r["version"]) for r in listed] == [("demo", 2)]
    versions = server.admin.get("/rules/demo/versions").json()
    assert [v["version"] for v in versions["versions"]] == [2, 1]
    shown = server.admin.get("/rules/demo", version=1).json()
    assert shown["content"] == YARA
    diff = server.admin.get("/rules/demo/diff", **{"from": 1, "to": 2}).json()
    assert "-rule only_this {" in diff["diff"]
    assert "+rule renamed {" in diff["diff"]

    conflict = add(server, "hashes", "demo", HASHES)
    assert_json_error(conflict, 409)


def test_a_yara_rule_that_does_not_compile_is_refused_with_its_line(server: Server) -> None:
    response = add(server, "yara", "broken", "rule x {\n condition:\n  tru\n}\n")
    assert_json_error(response, 422)
    assert "line 3" in response.json()["message"]
    assert server.admin.get("/rules").json() == []


def test_a_malformed_hash_line_is_named(server: Server) -> None:
    response = add(server, "hashes", "h", f"{SHA}:12:ok\nnot-a-hash:1:x\n")
    assert_json_error(response, 422)
    assert "line 2" in response.json()["message"]


def test_hash_lists_get_their_clamav_extension(server: Server) -> None:
    md5 = add(server, "hashes", "md5s", "d41d8cd98f00b204e9800998ecf8427e:0:Empty\n")
    assert md5.json()["file"] == "md5s.hdb"
    sha = add(server, "hashes", "shas", HASHES)
    assert sha.json()["file"] == "shas.hsb"
    assert sha.json()["records"] == 200


# -- delivery --------------------------------------------------------------------------------


def test_enrollment_gives_garrison_agents_the_keys_and_armadito_agents_nothing(
    server: Server,
) -> None:
    _, answer = garrison_agent(server)
    status = server.admin.get("/content").json()
    assert answer["server_id"] == status["server_id"]
    assert [k["key_id"] for k in answer["content_keys"]] == [status["key_id"]]
    raw = base64.b64decode(answer["content_keys"][0]["public_key"])
    assert hashlib.sha256(raw).hexdigest()[:16] == status["key_id"]

    armadito = server.agent()
    plain = armadito.enroll(server.first_key).json()
    assert "content_keys" not in plain
    assert "server_id" not in plain
    jobs = armadito.getjobs().json()
    assert "content" not in jobs
    assert_json_error(
        armadito.client.get(armadito.url("content/manifest"), headers=armadito.headers()), 404
    )


def test_a_garrison_agent_gets_a_signed_manifest_and_its_files(server: Server) -> None:
    agent, answer = garrison_agent(server)
    keys = {k["key_id"]: k["public_key"] for k in answer["content_keys"]}
    before = agent.getjobs().json()["content"]
    assert add(server, "yara", "demo", YARA).status_code == 201
    after = agent.getjobs().json()["content"]
    assert after["serial"] > before["serial"]

    response = agent.get("content/manifest")
    assert response.status_code == 200
    envelope = response.json()
    manifest = envelope["manifest"]
    assert envelope_ok(envelope, keys)
    assert hashlib.sha256(canonical(manifest)).hexdigest() == after["manifest_sha256"]
    assert response.headers["etag"] == f'"{after["manifest_sha256"]}"'
    assert manifest["serial"] == after["serial"]
    assert manifest["server_id"] == answer["server_id"]
    assert manifest["station_group"] is None
    assert manifest["policy"] == {"allow_unsigned_sources": False}
    (entry,) = manifest["files"]
    assert entry["name"] == "demo.yar"
    assert entry["version"] == 1
    assert entry["kind"] == "yara"

    unchanged = agent.get("content/manifest", **{"If-None-Match": response.headers["etag"]})
    assert unchanged.status_code == 304

    file = agent.get(f"content/files/{entry['sha256']}")
    assert file.status_code == 200
    assert file.headers["content-type"] == "application/octet-stream"
    assert file.content == YARA.encode()
    resumed = agent.get(f"content/files/{entry['sha256']}", Range="bytes=10-")
    assert resumed.status_code == 206
    assert resumed.content == YARA.encode()[10:]
    assert resumed.headers["content-range"] == f"bytes 10-{len(YARA) - 1}/{len(YARA)}"


def test_a_line_delta_rebuilds_the_new_version(server: Server) -> None:
    agent, _ = garrison_agent(server)
    old = add(server, "hashes", "h", HASHES).json()
    lines = HASHES.splitlines(keepends=True)
    changed = "".join(lines[:5] + lines[6:]) + f"{'f' * 64}:*:New\n"
    new = add(server, "hashes", "h", changed).json()
    response = agent.get(f"content/files/{new['sha256']}?base={old['sha256']}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    delta = response.json()
    assert delta["format"] == "line-delta-1"
    assert delta["remove"] == [lines[5].rstrip("\n")]
    assert delta["add"] == [f"{'f' * 64}:*:New"]
    kept = [line for line in HASHES.split("\n")[:-1] if line not in set(delta["remove"])]
    rebuilt = "".join(line + "\n" for line in kept + delta["add"])
    assert hashlib.sha256(rebuilt.encode()).hexdigest() == new["sha256"]

    # A yara rule set is not line-oriented: the full file.
    y = add(server, "yara", "y", YARA).json()
    full = agent.get(f"content/files/{y['sha256']}?base={old['sha256']}")
    assert full.headers["content-type"] == "application/octet-stream"


def test_a_station_fetches_only_what_its_manifests_name(server: Server) -> None:
    agent, _ = garrison_agent(server)
    other, _ = garrison_agent(server)
    group_with(server, "lab", other.agent_id)
    add(server, "hashes", "everyone", HASHES)
    put = server.admin.put("/content/assignments/default", {"rules": [{"name": "everyone"}]})
    assert put.status_code == 200, put.text
    assert server.admin.put("/groups/lab/content", {"rules": None}).status_code == 200
    # Made after the default names only "everyone": no manifest of the default ever had it.
    secret = add(server, "yara", "lab-only", YARA).json()

    names = [f["ruleset"] for f in agent.get("content/manifest").json()["manifest"]["files"]]
    assert names == ["everyone"]
    assert agent.get(f"content/files/{secret['sha256']}").status_code == 404
    assert agent.get(f"content/files/{'0' * 64}").status_code == 404
    lab = other.get("content/manifest").json()["manifest"]
    assert lab["station_group"] == "lab"
    assert other.get(f"content/files/{secret['sha256']}").status_code == 200
    assert agent.get("content/files/not-a-hash").status_code == 422


def test_a_pin_to_an_older_version_is_a_newer_serial(server: Server) -> None:
    agent, _ = garrison_agent(server)
    add(server, "yara", "demo", YARA)
    add(server, "yara", "demo", YARA.replace("only_this", "second"))
    latest = agent.get("content/manifest").json()["manifest"]
    assert latest["files"][0]["version"] == 2
    pinned = server.admin.put(
        "/content/assignments/default", {"rules": [{"name": "demo", "version": 1}]}
    )
    assert pinned.status_code == 200, pinned.text
    manifest = agent.get("content/manifest").json()["manifest"]
    assert manifest["files"][0]["version"] == 1
    assert manifest["serial"] > latest["serial"]
    missing = server.admin.put(
        "/content/assignments/default", {"rules": [{"name": "demo", "version": 9}]}
    )
    assert_json_error(missing, 404)


def test_group_membership_changes_the_serial(server: Server) -> None:
    agent, _ = garrison_agent(server)
    add(server, "yara", "demo", YARA)
    assert server.admin.post("/groups", {"name": "g"}).status_code == 201
    assert server.admin.put("/groups/g/content", {"rules": []}).status_code == 200
    before = agent.getjobs().json()["content"]
    joined = server.admin.post("/groups/g/stations", {"add": [agent.agent_id]})
    assert joined.status_code == 200
    after = agent.getjobs().json()["content"]
    assert after["serial"] > before["serial"]
    assert agent.get("content/manifest").json()["manifest"]["files"] == []
    assert server.admin.delete("/groups/g").status_code == 204
    back = agent.get("content/manifest").json()["manifest"]
    assert back["serial"] > after["serial"]
    assert len(back["files"]) == 1


def test_allowing_unsigned_sources_is_audited_as_a_warning(server: Server) -> None:
    agent, _ = garrison_agent(server)
    response = server.admin.put(
        "/content/assignments/default", {"rules": None, "allow_unsigned_sources": True}
    )
    assert response.status_code == 200
    audit = server.admin.get("/audit", action="content").json()
    items = audit["items"] if isinstance(audit, dict) else audit
    warned = [a for a in items if a["action"] == "content.unsigned_sources_allowed"]
    assert warned
    assert "unsigned" in json.dumps(warned[0]["details"])
    policy = agent.get("content/manifest").json()["manifest"]["policy"]
    assert policy == {"allow_unsigned_sources": True}


def test_a_key_rotation_is_signed_by_the_old_key(server: Server) -> None:
    agent, answer = garrison_agent(server)
    old_key = answer["content_keys"][0]
    add(server, "yara", "demo", YARA)
    before = agent.get("content/manifest").json()
    response = server.admin.post("/content-key/rotate", {"overlap_hours": 24})
    assert response.status_code == 200, response.text
    rotation = response.json()
    statement = rotation["statement"]
    assert statement["type"] == "key-rotation"
    assert statement["old_key_id"] == old_key["key_id"]
    assert verify(old_key["public_key"], rotation["signature"], statement)
    assert statement["issued"].endswith("Z")
    assert statement["old_key_valid_until"].endswith("Z")

    after = agent.get("content/manifest").json()
    assert after["key_id"] == statement["new_key_id"]
    assert after["manifest"]["serial"] > before["manifest"]["serial"]
    assert after["rotations"] == [rotation]
    assert verify(statement["new_public_key"], after["signature"], after["manifest"])
    assert not verify(old_key["public_key"], after["signature"], after["manifest"])

    # During the overlap a newly enrolled agent is given both keys.
    _, fresh = garrison_agent(server)
    assert {k["key_id"] for k in fresh["content_keys"]} == {
        old_key["key_id"],
        statement["new_key_id"],
    }
    key_file = server.settings.data_dir / "content-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    kept = server.settings.data_dir / f"content-key-{old_key['key_id']}.pem"
    assert kept.exists()
    assert kept.stat().st_mode & 0o777 == 0o600


def test_the_fleet_view_shows_who_is_behind(server: Server) -> None:
    agent, _ = garrison_agent(server)
    lagging, _ = garrison_agent(server)
    added = add(server, "yara", "demo", YARA).json()
    serial = agent.getjobs().json()["content"]["serial"]
    module = {
        "name": "demo",
        "mod_status": "up-to-date",
        "mod_update_timestamp": int(time.time()),
        "version": 1,
        "records": 1,
        "sha256": added["sha256"],
    }
    state = {
        "dbinfo": {
            "global_status": "up-to-date",
            "global_update_timestamp": int(time.time()),
            "modules": [module],
            "content_serial": serial,
        },
        "avdetails": [],
    }
    assert agent.state(state).status_code == 200
    # The module's version, records and hash reach virus_bases_received too.
    events = server.admin.get(
        "/events", station_id=agent.agent_id, type="virus_bases_received"
    ).json()["items"]
    assert events[0]["data"]["version_0"] == "1"
    assert events[0]["data"]["records_0"] == 1
    assert events[0]["data"]["sha256_0"] == added["sha256"]
    fleet = server.admin.get("/content/fleet").json()
    assert fleet["serial"] == serial
    by_id = {s["station_id"]: s for s in fleet["stations"]}
    assert by_id[agent.agent_id]["behind"] is False
    assert by_id[agent.agent_id]["content_serial"] == serial
    assert by_id[agent.agent_id]["rules"] == [{"name": "demo", "assigned": 1, "running": 1}]
    assert by_id[lagging.agent_id]["behind"] is True
    assert fleet["behind"] == 1
    assert fleet["versions"] == {"demo": {"1": 1}}
    behind = server.admin.get("/content/fleet", behind="true").json()
    assert [s["station_id"] for s in behind["stations"]] == [lagging.agent_id]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/rules", {"kind": "yara", "name": "x", "content": YARA}),
        ("/content-key/rotate", {"overlap_hours": 1}),
    ],
)
def test_a_viewer_cannot_write_content(server: Server, path: str, body: dict[str, Any]) -> None:
    viewer = server.admin.as_role("contentviewer", "viewer")
    assert_json_error(viewer.post(path, body), 403)
    assert_json_error(viewer.put("/content/assignments/default", {"rules": None}), 403)
    assert viewer.get("/rules").status_code == 200
    assert viewer.get("/content/fleet").status_code == 200
