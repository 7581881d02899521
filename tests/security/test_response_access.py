"""Access rules of live response (issue 17): collected files are for administrators only,
hunts are started and stopped by operators, and a station uploads only for its own jobs."""

from __future__ import annotations

import hashlib

from tests.conftest import Server
from tests.response.helpers import create_job, enroll
from tests.support import assert_json_error

DATA = b"sample bytes\n" * 100


def test_only_admins_list_or_download_files(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    job_id = create_job(server.admin, "GetFile", [agent.agent_id], path="/tmp/a")
    agent.jobs()
    assert agent.upload(DATA, job_id=job_id).status_code == 201
    digest = hashlib.sha256(DATA).hexdigest()
    viewer = server.admin.as_role("vera", "viewer")
    operator = server.admin.as_role("otto", "operator")
    for who in (viewer, operator):
        assert_json_error(who.get("/files"), 403, "forbidden")
        assert_json_error(who.get(f"/files/{digest}"), 403, "forbidden")
    assert_json_error(server.client.get(f"/admin/v1/files/{digest}"), 401, "not_authenticated")
    # Nor through the agent's token.
    bearer = {"Authorization": f"Bearer {agent.token}"}
    assert server.client.get(f"/admin/v1/files/{digest}", headers=bearer).status_code == 401
    assert server.admin.get("/audit", action="file.download").json() == []


def test_viewers_cannot_create_or_stop_hunts(server: Server) -> None:
    viewer = server.admin.as_role("vic", "viewer")
    body = {"question": {"type": "FindFile", "sha256": "a" * 64}, "target": {"all": True},
            "expires_in": 3600}  # fmt: skip
    assert_json_error(viewer.post("/hunts", body), 403, "forbidden")
    created = server.admin.post("/hunts", body)
    assert created.status_code == 201, created.text
    hunt_id = created.json()["id"]
    assert_json_error(viewer.post(f"/hunts/{hunt_id}/stop"), 403, "forbidden")
    assert viewer.get(f"/hunts/{hunt_id}").status_code == 200


def test_a_station_cannot_upload_for_another_stations_job(server: Server) -> None:
    owner = enroll(server.client, server.first_key)
    thief = enroll(server.client, server.first_key)
    job_id = create_job(server.admin, "GetFile", [owner.agent_id], path="/etc/shadow")
    owner.jobs()
    assert_json_error(thief.upload(DATA, job_id=job_id), 403, "forbidden")
    # Nor report its result, nor acknowledge it.
    assert thief.report(job_id, result={"sha256": "a" * 64}).status_code == 403
    assert server.admin.get("/files").json()["total"] == 0
    unauthenticated = server.client.put(
        f"/api/files/{hashlib.sha256(DATA).hexdigest()}?job_id={job_id}", content=DATA
    )
    assert unauthenticated.status_code == 401
