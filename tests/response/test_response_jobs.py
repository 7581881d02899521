"""Live-response jobs on the server (issue 17, RESPONSE-WIRE.md), on both backends: params
checked at creation, Armadito stations refused, ``queued -> sent -> downloaded`` through the
agent's CLOUD_NOTIFICATION, results stored and shown, uploads checked and stored, and the
password-protected zip download."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import pyzipper
from sqlalchemy import update

from garrison.server.files import actions
from garrison.server.files.archive import password_zip
from garrison.server.files.models import FileUpload, StoredFile
from tests.conftest import Server
from tests.response.helpers import create_job, enroll, target
from tests.support import assert_json_error

DATA = b"collected by garrison\n" * 1000


def bad_job(server: Server, job_type: str, station_id: int, **params: Any) -> dict[str, Any]:
    response = server.admin.post(
        "/jobs", {"type": job_type, "station_ids": [station_id], "params": params}
    )
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    return body


def test_response_params_are_checked(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    sid = agent.agent_id
    assert bad_job(server, "KillProcess", sid)["field"] == "params"
    assert bad_job(server, "KillProcess", sid, pid=1)["field"] == "params.pid"
    assert bad_job(server, "KillProcess", sid, pid=5, sha256="a" * 64)["field"] == "params"
    assert bad_job(server, "KillProcess", sid, pid=5, tree="yes")["field"] == "params.tree"
    assert bad_job(server, "GetFile", sid, path="etc/hostname")["field"] == "params.path"
    assert bad_job(server, "GetFile", sid, path="/etc/../etc/shadow")["field"] == "params.path"
    assert bad_job(server, "GetFile", sid, path="/x", max_bytes=5)["field"] == "params.max_bytes"
    assert bad_job(server, "ListProcesses", sid, all=True)["field"] == "params.all"
    assert bad_job(server, "RestoreQuarantined", sid)["field"] == "params.id"
    unknown = bad_job(server, "RunScript", sid, script="collect", sha256="b" * 64)
    assert unknown["field"] == "params.script"
    hunt = bad_job(server, "Hunt", sid, hunt_id=1)
    assert "POST /admin/v1/hunts" in hunt["message"]
    ok = create_job(server.admin, "KillProcess", [sid], pid=4242, tree=True)
    assert target(server.admin, ok, sid)["status"] == "queued"


def test_armadito_stations_are_never_given_response_jobs(server: Server) -> None:
    armadito = server.enrolled_agent()
    body = bad_job(server, "ListProcesses", armadito.agent_id)
    assert "Armadito" in body["message"]
    # Their Scan jobs still go queued -> downloaded at Getjobs, as before.
    scan = create_job(server.admin, "Scan", [armadito.agent_id], path="/tmp")
    assert armadito.getjobs().json()["jobs"][0]["job_id"] == scan
    assert target(server.admin, scan, armadito.agent_id)["status"] == "downloaded"


def test_receipt_moves_sent_to_downloaded_once(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    job_id = create_job(server.admin, "ListProcesses", [agent.agent_id], investigation_id="inv-7")
    [job] = agent.jobs()
    assert job["obj"] == {"investigation_id": "inv-7"}
    assert target(server.admin, job_id, agent.agent_id)["status"] == "sent"
    other = create_job(server.admin, "ListSessions", [agent.agent_id])
    [second] = agent.jobs()
    assert second["obj"]["investigation_id"] == f"job-{other}"

    assert agent.notify(job).status_code == 200
    row = target(server.admin, job_id, agent.agent_id)
    assert row["status"] == "downloaded"
    assert row["downloaded_at"] is not None
    # A re-sent receipt (same event id: a duplicate) and a second one change nothing.
    assert agent.notify(job, notification_id="fixed-id").status_code == 200
    assert agent.notify(job, notification_id="fixed-id").status_code == 200
    assert target(server.admin, job_id, agent.agent_id)["downloaded_at"] == row["downloaded_at"]
    # A receipt for a job of another station moves nothing.
    intruder = enroll(server.client, server.first_key)
    assert intruder.notify(second).status_code == 200
    assert target(server.admin, other, agent.agent_id)["status"] == "sent"

    result = {"processes": [{"pid": 1, "name": "init"}], "truncated": False}
    assert agent.report(job_id, result=result).status_code == 200
    done = target(server.admin, job_id, agent.agent_id)
    assert (done["status"], done["result"]) == ("successful", result)


def test_failures_and_partial_results_are_never_shown_complete(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    failed = create_job(server.admin, "KillProcess", [agent.agent_id], pid=99999)
    partial = create_job(server.admin, "KillProcess", [agent.agent_id], pid=99998, tree=True)
    claimed = create_job(server.admin, "GetFile", [agent.agent_id], path="/etc/hostname")
    agent.jobs()
    assert agent.report(failed, code=10, message="no process 99999").status_code == 200
    row = target(server.admin, failed, agent.agent_id)
    assert (row["status"], row["code"], row["message"]) == ("failed", 10, "no process 99999")
    assert row["result"] is None

    killed = {"killed": [{"pid": 99998}], "gone": []}
    assert agent.report(partial, code=99, result=killed, message="child").status_code == 200
    row = target(server.admin, partial, agent.agent_id)
    assert row["status"] == "failed"
    assert row["result"] == {**killed, "partial": True}

    # Success for a file that never arrived is a failure.
    fake = {"path": "/etc/hostname", "sha256": "c" * 64, "size": 3}
    assert agent.report(claimed, result=fake).status_code == 200
    row = target(server.admin, claimed, agent.agent_id)
    assert row["status"] == "failed"
    assert "never uploaded" in row["message"]
    assert row["result"]["partial"] is True


def test_oversized_result_is_refused(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    job_id = create_job(server.admin, "ListProcesses", [agent.agent_id])
    agent.jobs()
    huge = {"processes": [{"cmdline": "x" * 1024}] * 1100, "truncated": False}
    response = agent.report(job_id, result=huge)
    assert_json_error(response, 413, "too_large")
    assert target(server.admin, job_id, agent.agent_id)["status"] == "sent"


def _zip_member(path: Path, tmp_path: Path, password: str) -> bytes:
    out = tmp_path / "unzipped"
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        ["7z", "x", f"-p{password}", f"-o{out}", "-y", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stdout + done.stderr)
    [member] = list(out.iterdir())
    return member.read_bytes()


@pytest.mark.skipif(shutil.which("7z") is None, reason="7z (p7zip-full) is not installed")
def test_get_file_upload_and_zip_download(server: Server, tmp_path: Path) -> None:
    agent = enroll(server.client, server.first_key)
    job_id = create_job(server.admin, "GetFile", [agent.agent_id], path="/var/log/app.log")
    [job] = agent.jobs()
    assert job["obj"]["path"] == "/var/log/app.log"
    assert job["obj"]["max_bytes"] == 100 << 20
    agent.notify(job)
    digest = hashlib.sha256(DATA).hexdigest()
    first = agent.upload(DATA, job_id=job_id)
    assert first.status_code == 201, first.text
    assert first.json() == {"status": "ok", "sha256": digest, "size": len(DATA)}
    assert agent.upload(DATA, job_id=job_id).status_code == 200  # idempotent
    result = {"path": "/var/log/app.log", "sha256": digest, "size": len(DATA)}
    assert agent.report(job_id, result=result).status_code == 200
    row = target(server.admin, job_id, agent.agent_id)
    assert (row["status"], row["result"]["sha256"]) == ("successful", digest)

    listed = server.admin.get("/files").json()
    assert listed["total"] == 1
    item = listed["items"][0]
    assert (item["sha256"], item["station_id"], item["job_id"]) == (digest, agent.agent_id, job_id)
    assert (item["size"], item["path"]) == (len(DATA), "/var/log/app.log")

    download = server.admin.get(f"/files/{digest}")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    assert DATA not in download.content  # encrypted, so no scanner sees the sample
    archive = tmp_path / "sample.zip"
    archive.write_bytes(download.content)
    assert _zip_member(archive, tmp_path, "infected") == DATA
    with pytest.raises(RuntimeError):
        _zip_member(archive, tmp_path, "wrong-password")
    audit = server.admin.get("/audit", action="file.download").json()
    assert [e["target"] for e in audit] == [digest]
    assert_json_error(server.admin.get(f"/files/{'d' * 64}"), 404, "not_found")


def test_upload_checks(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    other = enroll(server.client, server.first_key)
    job_id = create_job(server.admin, "GetFile", [agent.agent_id], path="/tmp/a")
    listing = create_job(server.admin, "ListProcesses", [agent.agent_id])
    queued_only = create_job(server.admin, "GetFile", [other.agent_id], path="/tmp/b")

    # Not fetched yet: no upload for it.
    assert_json_error(other.upload(DATA, job_id=queued_only), 409, "conflict")
    agent.jobs()
    assert_json_error(other.upload(DATA, job_id=job_id), 403, "forbidden")
    assert_json_error(agent.upload(DATA, job_id=listing), 403, "forbidden")
    assert_json_error(agent.upload(DATA, job_id=424242), 404, "unknown_job")
    mismatch = agent.upload(DATA, job_id=job_id, sha256="e" * 64)
    assert_json_error(mismatch, 400, "hash_mismatch")
    assert_json_error(
        agent.upload(DATA, alert="0f0e1d2c-0000-4000-8000-000000000000"), 403, "forbidden"
    )  # samples are off
    armadito = server.enrolled_agent()
    response = server.client.put(
        f"/api/files/{hashlib.sha256(DATA).hexdigest()}?job_id={job_id}",
        content=DATA,
        headers=armadito.headers(),
    )
    assert response.status_code == 403

    settings = server.admin.patch("/settings", {"file_max_bytes": 1000})
    assert settings.status_code == 200, settings.text
    too_big = agent.upload(DATA, job_id=job_id)
    assert_json_error(too_big, 413, "too_large")
    assert "file_max_bytes" in too_big.json()["message"]
    server.admin.patch("/settings", {"file_max_bytes": 1 << 20, "file_quota_bytes": 1000})
    over = agent.upload(DATA, job_id=job_id)
    assert_json_error(over, 413, "too_large")
    assert "quota" in over.json()["message"]
    # The cap the agent is told at Getjobs is what the quota leaves.
    more = create_job(server.admin, "GetFile", [agent.agent_id], path="/tmp/c")
    [fetched] = [j for j in agent.jobs() if j["job_id"] == more]
    assert fetched["obj"]["max_bytes"] == 1000
    assert server.admin.get("/files").json()["total"] == 0  # nothing partial was stored


def test_a_lying_content_length_is_refused(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    job_id = create_job(server.admin, "GetFile", [agent.agent_id], path="/tmp/a")
    agent.jobs()
    server.admin.patch("/settings", {"file_max_bytes": 4096})
    # Announced small, streamed large: cut at the cap.
    small = agent.upload(DATA, job_id=job_id, length=100)
    assert small.status_code in (400, 413, 422), small.text
    assert server.admin.get("/files").json()["total"] == 0


def test_file_retention_deletes_old_blobs(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    job_id = create_job(server.admin, "GetFile", [agent.agent_id], path="/tmp/a")
    agent.jobs()
    assert agent.upload(DATA, job_id=job_id).status_code == 201
    assert actions.expire(server.db) == 0
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=91)
    with server.db.transaction() as session:
        session.execute(update(FileUpload).values(created_at=old))
        session.execute(update(StoredFile).values(created_at=old))
    assert actions.expire(server.db) == 1
    assert server.admin.get("/files").json()["total"] == 0
    digest = hashlib.sha256(DATA).hexdigest()
    assert server.admin.get(f"/files/{digest}").status_code == 404


def test_zip_in_memory_opens_with_pyzipper() -> None:
    with password_zip("x.bin", [b"a" * 10, b"b" * 10]) as made:
        data = made.read()
    with pyzipper.AESZipFile(io.BytesIO(data)) as archive:
        archive.setpassword(b"infected")
        assert archive.read("x.bin") == b"a" * 10 + b"b" * 10


def test_alert_samples_upload_when_the_setting_allows(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    alert = "5a0c2a1e-6a55-4c1b-9d0e-0123456789ab"
    event = {"id": alert, "type": "threat_detected", "data": {"virus": "T", "object": "/x"}}
    posted = server.client.post("/api/events", content=json.dumps([event]), headers=agent.headers())
    assert posted.json()["stored"] == 1, posted.text
    assert_json_error(agent.upload(DATA, alert=alert), 403, "forbidden")
    server.admin.patch("/settings", {"upload_samples": 1})
    uploaded = agent.upload(DATA, alert=alert)
    assert uploaded.status_code == 201, uploaded.text
    [item] = server.admin.get("/files").json()["items"]
    assert (item["alert_uid"], item["job_id"], item["station_id"]) == (alert, None, agent.agent_id)
    # Another station's alert, or none at all, is not a reason to upload.
    other = enroll(server.client, server.first_key)
    assert_json_error(other.upload(DATA, alert=alert), 404, "not_found")
    unknown = agent.upload(DATA, alert="00000000-0000-4000-8000-000000000000")
    assert_json_error(unknown, 404, "not_found")


def test_a_sample_names_the_threat_detected_event_of_its_alert(server: Server) -> None:
    # The agent names its detection (info.event_uuid) before it reports the alert; the
    # server's threat_detected event takes that name, so the sample uploaded afterwards finds it.
    server.admin.patch("/settings", {"upload_samples": 1})
    agent = enroll(server.client, server.first_key)
    named = "7d1e0c2a-1b2c-4d3e-8f40-0123456789ab"
    alert = {
        "name": "Eicar-Test-Signature",
        "filepath": "/tmp/eicar.com",
        "detection_time": 1_700_000_000,
        "info": {"sha256": hashlib.sha256(DATA).hexdigest(), "event_uuid": named},
    }
    posted = server.client.post(
        "/api/alerts",
        content=json.dumps(agent.envelope("Alerts", {"alerts": [alert]})),
        headers=agent.headers(),
    )
    assert posted.status_code == 200, posted.text
    uploaded = agent.upload(DATA, alert=named)
    assert uploaded.status_code == 201, uploaded.text
    [item] = server.admin.get("/files").json()["items"]
    assert (item["alert_uid"], item["station_id"]) == (named, agent.agent_id)
