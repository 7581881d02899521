"""The approved script library (issue 17): ``script`` rule sets enter manifests only once an
administrator approved the version (audited), and RunScript jobs and hunts must name an
approved version by its bundle sha256."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.conftest import Server
from tests.response.helpers import ResponseAgent, create_job, enroll
from tests.support import assert_json_error

SCRIPT = "#!/bin/sh\necho collected\n"
SCRIPT_2 = "#!/bin/sh\necho collected twice\n"


def manifest_scripts(agent: ResponseAgent) -> list[dict[str, Any]]:
    response = agent.client.get(agent.url("content/manifest"), headers=agent.headers())
    assert response.status_code == 200, response.text
    files: list[dict[str, Any]] = response.json()["manifest"]["files"]
    return [f for f in files if f["kind"] == "script"]


def test_only_approved_script_versions_enter_manifests(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    added = server.admin.post("/rules", {"kind": "script", "name": "collect", "content": SCRIPT})
    assert added.status_code == 201, added.text
    digest = hashlib.sha256(SCRIPT.encode()).hexdigest()
    assert added.json()["sha256"] == digest
    assert added.json()["approved_at"] is None
    assert manifest_scripts(agent) == []
    refused = server.admin.post(
        "/jobs",
        {"type": "RunScript", "station_ids": [agent.agent_id],
         "params": {"script": "collect", "sha256": digest}},
    )  # fmt: skip
    assert_json_error(refused, 422, "invalid_input")
    assert "not approved" in refused.json()["message"]

    viewer = server.admin.as_role("val", "viewer")
    assert viewer.post("/rules/collect/versions/1/approve").status_code == 403
    approved = server.admin.post("/rules/collect/versions/1/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["approved_by"] == "admin"
    [entry] = manifest_scripts(agent)
    assert (entry["version"], entry["sha256"]) == (1, digest)
    job_id = create_job(server.admin, "RunScript", [agent.agent_id], script="collect",
                        sha256=digest, args=["-v"], timeout=30)  # fmt: skip
    [job] = agent.jobs()
    assert job["job_id"] == job_id
    assert job["obj"] == {
        "script": "collect",
        "sha256": digest,
        "args": ["-v"],
        "timeout": 30,
        "output_cap": 1 << 20,
        "investigation_id": f"job-{job_id}",
    }

    # A new version waits for its own approval; the approved one stays in the manifest.
    server.admin.post("/rules", {"kind": "script", "name": "collect", "content": SCRIPT_2})
    assert [e["version"] for e in manifest_scripts(agent)] == [1]
    server.admin.post("/rules/collect/versions/2/approve")
    assert [e["version"] for e in manifest_scripts(agent)] == [2]
    withdrawn = server.admin.post("/rules/collect/versions/2/unapprove")
    assert withdrawn.json()["approved_at"] is None
    assert [e["version"] for e in manifest_scripts(agent)] == [1]
    audit = server.admin.get("/audit", action="content").json()
    actions = [e["action"] for e in audit]
    assert actions.count("content.script_approve") == 2
    assert actions.count("content.script_unapprove") == 1


def test_only_scripts_are_approved(server: Server) -> None:
    yara = (
        'rule only_this {\n  strings:\n    $a = "garrison-script-test"\n  condition:\n    $a\n}\n'
    )
    assert (
        server.admin.post("/rules", {"kind": "yara", "name": "y", "content": yara}).status_code
        == 201
    )
    assert_json_error(server.admin.post("/rules/y/versions/1/approve"), 422, "invalid_input")
    assert_json_error(server.admin.post("/rules/none/versions/1/approve"), 404, "not_found")
