"""Live response against real ``garrison serve`` processes, driven over HTTP as a Garrison
agent would (RESPONSE-WIRE.md): on each backend one server, and on PostgreSQL two nodes of
one database, where an upload taken by one node is downloaded from the other, a receipt sent
to either node moves the job once, and a hunt created on one reaches a station checking in
on the other."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live import LiveServer, start_server
from tests.response.helpers import ResponseAgent, create_job, enroll, target
from tests.support import Admin, wait_for

SAMPLE = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$ not-really-eicar " * 4000
SHA = hashlib.sha256(SAMPLE).hexdigest()

pytestmark = pytest.mark.skipif(shutil.which("7z") is None, reason="needs 7z (p7zip-full)")


def admin_of(live: LiveServer, client: httpx.Client) -> Admin:
    return Admin(client, live.token)


def key_of(admin: Admin) -> str:
    return admin.new_key(uses=20)


def unzip(data: bytes, tmp_path: Path) -> bytes:
    archive = tmp_path / "download.zip"
    archive.write_bytes(data)
    out = tmp_path / "out"
    subprocess.run(
        ["7z", "x", "-pinfected", f"-o{out}", "-y", str(archive)], check=True, capture_output=True
    )
    [member] = list(out.iterdir())
    return member.read_bytes()


def collect(agent: ResponseAgent, admin: Admin, path: str) -> int:
    job_id = create_job(admin, "GetFile", [agent.agent_id], path=path)
    [job] = [j for j in agent.jobs() if j["job_id"] == job_id]
    assert job["obj"]["max_bytes"] >= len(SAMPLE)
    assert agent.notify(job).status_code == 200
    uploaded = agent.upload(SAMPLE, job_id=job_id)
    assert uploaded.status_code in (200, 201), uploaded.text
    result = {"path": path, "sha256": SHA, "size": len(SAMPLE)}
    assert agent.report(job_id, result=result).status_code == 200
    return job_id


def test_get_file_and_hunt_on_a_real_server(tmp_path: Path, database_url: str) -> None:
    live = start_server(tmp_path / "data", database_url)
    try:
        with httpx.Client(base_url=live.url, timeout=30) as client:
            admin = admin_of(live, client)
            key = key_of(admin)
            agent = enroll(client, key)
            job_id = collect(agent, admin, "/opt/app/sample.bin")
            row = target(admin, job_id, agent.agent_id)
            assert (row["status"], row["result"]["sha256"]) == ("successful", SHA)
            assert row["downloaded_at"] is not None
            download = admin.get(f"/files/{SHA}")
            assert download.status_code == 200
            assert unzip(download.content, tmp_path) == SAMPLE

            hunt = admin.post(
                "/hunts",
                {"question": {"type": "FindFile", "sha256": SHA}, "target": {"all": True},
                 "expires_in": 600},
            )  # fmt: skip
            assert hunt.status_code == 201, hunt.text
            hunt_id = hunt.json()["id"]
            late = enroll(client, key)  # enrolled after the hunt was created
            [job] = [j for j in late.jobs() if j["job_type"] == "Hunt"]
            assert job["obj"]["hunt_id"] == hunt_id
            result: dict[str, Any] = {
                "found": True,
                "matches": [{"path": "/tmp/x", "sha256": SHA, "size": len(SAMPLE)}],
                "scanned": 3,
                "truncated": False,
            }
            assert late.report(job["job_id"], result=result).status_code == 200
            detail = admin.get(f"/hunts/{hunt_id}").json()
            rows = {r["station_id"]: r for r in detail["results"]}
            assert rows[late.agent_id]["found"] is True
            assert rows[late.agent_id]["paths"] == ["/tmp/x"]
            assert detail["progress"]["targeted"] == 2
    finally:
        live.stop()


def test_two_nodes_share_files_receipts_and_hunts(tmp_path: Path, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several nodes share a PostgreSQL database")
    env = {"GARRISON_SECRETS_KEY_FILE": str(tmp_path / "secrets.key")}
    first = start_server(tmp_path / "a", database_url, env)
    second = start_server(tmp_path / "b", database_url, env)
    try:
        with (
            httpx.Client(base_url=first.url, timeout=30) as one,
            httpx.Client(base_url=second.url, timeout=30) as two,
        ):
            admin_one, admin_two = admin_of(first, one), Admin(two, first.token)
            key = key_of(admin_one)
            agent = enroll(one, key)
            job_id = create_job(admin_one, "GetFile", [agent.agent_id], path="/srv/a")
            [job] = agent.jobs()
            # The receipt reaches the other node; the upload lands on the first.
            on_two = ResponseAgent(two, uuid=agent.uuid, agent_id=agent.agent_id, token=agent.token)
            assert on_two.notify(job).status_code == 200
            assert agent.notify(job).status_code == 200
            assert target(admin_one, job_id, agent.agent_id)["status"] == "downloaded"
            assert agent.upload(SAMPLE, job_id=job_id).status_code == 201
            assert on_two.upload(SAMPLE, job_id=job_id).status_code == 200  # one blob
            result = {"path": "/srv/a", "sha256": SHA, "size": len(SAMPLE)}
            assert on_two.report(job_id, result=result).status_code == 200
            assert target(admin_two, job_id, agent.agent_id)["status"] == "successful"
            assert unzip(admin_two.get(f"/files/{SHA}").content, tmp_path) == SAMPLE

            # A hunt made on the first node reaches a station that checks in on the second
            # (its watcher reads the active hunts every few seconds).
            hunt = admin_one.post(
                "/hunts",
                {"question": {"type": "FindProcess", "name": "sshd"}, "target": {"all": True},
                 "expires_in": 600},
            )  # fmt: skip
            hunt_id = hunt.json()["id"]
            late = enroll(two, key)

            def got_it() -> bool:
                return any(j["job_type"] == "Hunt" for j in late.jobs())

            wait_for(got_it, timeout=20, what="the hunt reaches a station on the other node")
            progress = admin_two.get(f"/hunts/{hunt_id}").json()["progress"]
            assert progress["targeted"] == 2
    finally:
        first.stop()
        second.stop()
