"""The console's hunts, collected files and a station's live-response buttons, on both
backends: each goes through the admin API's use case, shows the admin API's messages beside
the field, offers only what the station's agent runs, and refuses a viewer's forced write."""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import re
from typing import Any

import pyzipper

from tests.conftest import Server
from tests.console.support import csrf_of, login, make_user
from tests.response.helpers import ResponseAgent, create_job, enroll

SHA = "cd" * 32
DATA = b"collected for the console\n" * 100


def _operator(server: Server, name: str) -> str:
    login(server.client, name, make_user(server.admin, name, "operator"))
    return csrf_of(server.client.get("/hunts").text)


def _hunt_form(**values: str) -> dict[str, str]:
    return {
        "type": "FindFile",
        "criterion": "sha256",
        "value": SHA,
        "roots": "/srv",
        "max_depth": "",
        "target": "all",
        "target_value": "",
        "expires_in": "3600",
        "priority": "2",
        **values,
    }


def _hunt_job(agent: ResponseAgent) -> dict[str, Any]:
    [job] = [j for j in agent.jobs() if j["job_type"] == "Hunt"]
    return job


def test_a_hunt_from_the_console_with_progress_results_csv_and_stop(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    csrf = _operator(server, "hunter")
    made = server.client.post(
        "/hunts", data={**_hunt_form(), "csrf_token": csrf}, follow_redirects=False
    )
    assert made.status_code == 303, made.text
    hunt_id = int(made.headers["location"].rsplit("/", 1)[1])
    api = server.admin.get(f"/hunts/{hunt_id}").json()
    question = {"type": "FindFile", "sha256": SHA, "roots": ["/srv"], "max_depth": 32}
    assert api["question"] == question
    assert (api["target"], api["created_by"]) == ({"all": True}, "hunter")

    job = _hunt_job(agent)
    agent.notify(job)
    match = {"path": "/srv/found.bin", "sha256": SHA, "size": 4}
    result = {"found": True, "matches": [match], "scanned": 3, "truncated": False}
    assert agent.report(job["job_id"], result=result).status_code == 200
    page = server.client.get(f"/hunts/{hunt_id}")
    assert page.status_code == 200
    assert "/srv/found.bin" in page.text
    assert "<strong>yes</strong>" in page.text
    assert server.client.get("/hunts").text.count(f'href="/hunts/{hunt_id}"') == 1
    exported = server.client.get(f"/hunts/{hunt_id}/results.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["station_id"], r["found"]) for r in rows] == [(str(agent.agent_id), "true")]

    stopped = server.client.post(
        f"/hunts/{hunt_id}/stop", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert stopped.status_code == 303
    assert server.admin.get(f"/hunts/{hunt_id}").json()["state"] == "stopped"


def test_hunt_form_problems_are_the_admin_api_messages_beside_the_field(server: Server) -> None:
    csrf = _operator(server, "hunter2")
    cases = [
        ({"criterion": "glob", "value": ""}, "value"),
        ({"roots": "relative/dir"}, "roots"),
        ({"max_depth": "999"}, "max_depth"),
        ({"target": "group", "target_value": ""}, "target_value"),
        ({"expires_in": "5"}, "expires_in"),
    ]
    from garrison.server.console.hunts_pages import question_of, target_of
    from garrison.server.console.web import Form

    for values, field in cases:
        form_values = _hunt_form(**values)
        page = server.client.post("/hunts", data={**form_values, "csrf_token": csrf})
        assert page.status_code == 422, (values, page.text[-500:])
        form = Form(values=form_values)
        body = {
            "question": question_of(form),
            "target": target_of(form),
            "expires_in": int(form_values["expires_in"]),
        }
        api = server.admin.post("/hunts", body)
        assert api.status_code == 422, api.text
        message = api.json()["message"]
        if api.json().get("details"):
            message = api.json()["details"][0]["problem"]
        pattern = rf'id="e-{field}" class="problem">' + re.escape(html.escape(message))
        assert re.search(pattern, page.text), (values, message)
    assert server.admin.get("/hunts").json()["total"] == 0


def test_collected_files_list_and_the_encrypted_zip(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    job_id = create_job(server.admin, "GetFile", [agent.agent_id], path="/var/log/app.log")
    [job] = agent.jobs()
    agent.notify(job)
    assert agent.upload(DATA, job_id=job_id).status_code == 201
    digest = hashlib.sha256(DATA).hexdigest()
    login(server.client, "fileadmin", make_user(server.admin, "fileadmin", "admin"))
    page = server.client.get("/files")
    assert page.status_code == 200
    assert "/var/log/app.log" in page.text
    assert f'href="/files/{digest}"' in page.text
    assert server.client.get("/files", params={"sha256": "nothex"}).status_code == 422
    download = server.client.get(f"/files/{digest}")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    assert DATA not in download.content
    with pyzipper.AESZipFile(io.BytesIO(download.content)) as archive:
        archive.setpassword(b"infected")
        [name] = archive.namelist()
        assert archive.read(name) == DATA
    audit = server.admin.get("/audit", action="file.download").json()
    assert [(e["actor"], e["target"]) for e in audit] == [("fileadmin", digest)]
    # Collected files are for admins, as in the admin API.
    login(server.client, "fileop", make_user(server.admin, "fileop", "operator"))
    assert server.client.get("/files").status_code == 403
    assert server.client.get(f"/files/{digest}").status_code == 403


def test_station_live_response_buttons(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    armadito = server.enrolled_agent()
    csrf = _operator(server, "responder")
    page = server.client.get(f"/stations/{agent.agent_id}").text
    for action in ("processes", "connections", "kill", "get_file", "quarantine_file", "restore"):
        assert f'name="action" value="{action}"' in page, action
    # An Armadito agent runs scans only: no live-response button, not even isolate.
    other = server.client.get(f"/stations/{armadito.agent_id}").text
    assert 'value="scan"' in other
    assert 'value="processes"' not in other
    assert 'value="isolate"' not in other

    listed = server.client.post(
        f"/stations/{agent.agent_id}/jobs",
        data={"action": "processes", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert listed.status_code == 303, listed.text
    job_id = int(listed.headers["location"].rsplit("/", 1)[1])
    assert server.admin.get(f"/jobs/{job_id}").json()["type"] == "ListProcesses"
    killed = server.client.post(
        f"/stations/{agent.agent_id}/jobs",
        data={"action": "kill", "pid": "4242", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert killed.status_code == 303
    kill_id = int(killed.headers["location"].rsplit("/", 1)[1])
    assert server.admin.get(f"/jobs/{kill_id}").json()["params"]["pid"] == 4242

    # A bad parameter: the admin API's message, beside the field that gave it.
    for action, field, value, api_params in [
        ("kill", "pid", "1", {"pid": 1}),
        ("get_file", "file_path", "relative.txt", {"path": "relative.txt"}),
    ]:
        bad = server.client.post(
            f"/stations/{agent.agent_id}/jobs",
            data={"action": action, field: value, "csrf_token": csrf},
        )
        assert bad.status_code == 422
        job_type = "KillProcess" if action == "kill" else "GetFile"
        api = server.admin.post(
            "/jobs", {"type": job_type, "station_ids": [agent.agent_id], "params": api_params}
        )
        assert api.status_code == 422
        message = re.escape(html.escape(api.json()["message"]))
        assert re.search(rf'id="e-{field}" class="problem">{message}', bad.text), bad.text
    # Armadito: refused with the admin API's reason even when forced.
    forced = server.client.post(
        f"/stations/{armadito.agent_id}/jobs", data={"action": "processes", "csrf_token": csrf}
    )
    assert forced.status_code == 422
    assert "live response needs a Garrison agent" in forced.text


def test_a_viewer_gets_no_hunt_or_response_control(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    login(server.client, "huntwatch", make_user(server.admin, "huntwatch", "viewer"))
    for page in ["/hunts", f"/stations/{agent.agent_id}"]:
        answer = server.client.get(page)
        assert answer.status_code == 200
        forms = re.findall(r'<form method="post" action="([^"]+)"', answer.text)
        assert set(forms) == {"/logout"}, (page, forms)
    csrf = csrf_of(server.client.get("/hunts").text)
    assert server.client.get("/files").status_code == 403
    refused = server.client.post("/hunts", data={**_hunt_form(), "csrf_token": csrf})
    assert refused.status_code == 403
    refused = server.client.post(
        f"/stations/{agent.agent_id}/jobs", data={"action": "processes", "csrf_token": csrf}
    )
    assert refused.status_code == 403
    assert server.admin.get("/hunts").json()["total"] == 0
    assert server.admin.get("/jobs").json()["total"] == 0
    # An operator without the CSRF token: refused, no hunt.
    login(server.client, "huntop", make_user(server.admin, "huntop", "operator"))
    assert server.client.post("/hunts", data=_hunt_form()).status_code == 403
    assert server.admin.get("/hunts").json()["total"] == 0


def test_the_event_search_downloads_as_ndjson(server: Server) -> None:
    agent = enroll(server.client, server.first_key)
    job_id = create_job(server.admin, "ListProcesses", [agent.agent_id])
    [job] = agent.jobs()
    assert agent.notify(job).status_code == 200
    assert agent.report(job_id, result={"processes": []}).status_code == 200
    login(server.client, "exporter", make_user(server.admin, "exporter", "viewer"))
    page = server.client.get("/events", params={"station_id": str(agent.agent_id)})
    assert f"/events/export.ndjson?station_id={agent.agent_id}" in page.text
    answer = server.client.get("/events/export.ndjson", params={"station_id": agent.agent_id})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in answer.text.splitlines()]
    api = server.admin.get("/events", station_id=agent.agent_id, limit=1000).json()
    assert [e["seq"] for e in lines] == [e["seq"] for e in api["items"]]
    assert lines
    assert {e["station_id"] for e in lines} == {agent.agent_id}
    typed = server.client.get("/events/export.ndjson", params={"type": "no_such_type"})
    assert typed.status_code == 422
    assert "unknown event type" in typed.text


def test_a_runscript_hunt_names_an_approved_script_version(server: Server) -> None:
    script = "#!/bin/sh\necho console\n"
    digest = hashlib.sha256(script.encode()).hexdigest()
    added = server.admin.post("/rules", {"kind": "script", "name": "triage", "content": script})
    assert added.status_code == 201, added.text
    csrf = _operator(server, "scripter")
    form = _hunt_form(type="RunScript", script="triage", script_sha256=digest, value="-v\n--all\n")
    form["script_timeout"] = "30"
    # Not approved yet: the script library's own message, beside the version's field.
    refused = server.client.post("/hunts", data={**form, "csrf_token": csrf})
    assert refused.status_code == 422
    # (Jinja writes the quotes around the name as &#39;.)
    message = r"version 1 of script &#39;triage&#39; is not approved by an administrator"
    assert re.search(r'id="e-script_sha256" class="problem">' + message, refused.text)
    unknown = server.client.post("/hunts", data={**form, "script": "nope", "csrf_token": csrf})
    assert re.search(r'id="e-script" class="problem">no script', unknown.text)
    assert server.admin.get("/hunts").json()["total"] == 0

    assert server.admin.post("/rules/triage/versions/1/approve").status_code == 200
    made = server.client.post("/hunts", data={**form, "csrf_token": csrf}, follow_redirects=False)
    assert made.status_code == 303, made.text
    hunt_id = int(made.headers["location"].rsplit("/", 1)[1])
    question = server.admin.get(f"/hunts/{hunt_id}").json()["question"]
    assert question["type"] == "RunScript"
    assert (question["script"], question["sha256"]) == ("triage", digest)
    assert (question["args"], question["timeout"]) == (["-v", "--all"], 30)
