"""``garrison jobs create`` with the live-response types, ``garrison files list|get`` and
``garrison hunts create|list|show|stop|results``, and ``rules approve``, against a real
server, with a Garrison agent driven over HTTP."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import Cli, assert_one_line_error
from tests.response.helpers import ResponseAgent, enroll

DATA = b"a collected file\n" * 500


@pytest.fixture
def agent(cli: Cli) -> Iterator[ResponseAgent]:
    key = cli.json("keys", "create", "--uses", "1")["key"]
    client = httpx.Client(base_url=cli.live.url)
    yield enroll(client, key)
    client.close()


def test_get_file_then_files_list_and_get(cli: Cli, agent: ResponseAgent, tmp_path: Path) -> None:
    job = cli.json(
        "jobs", "create", "--type", "GetFile", "--station", agent.agent_id, "--path", "/etc/motd"
    )
    assert job["params"] == {"path": "/etc/motd"}
    [fetched] = agent.jobs()
    assert agent.upload(DATA, job_id=job["id"]).status_code == 201
    digest = hashlib.sha256(DATA).hexdigest()
    result = {"path": "/etc/motd", "sha256": digest, "size": len(DATA)}
    assert agent.report(fetched["job_id"], result=result).status_code == 200
    shown = cli("jobs", "show", job["id"])
    assert shown.returncode == 0, shown.stderr
    assert f"sha256 {digest}"[:30] in shown.stdout.replace("\n", "")

    listed = cli.json("files", "list", "--station", agent.agent_id)
    assert [f["sha256"] for f in listed["items"]] == [digest]
    table = cli("files", "list")
    assert table.returncode == 0, table.stderr
    assert digest[:12] in table.stdout
    out = tmp_path / "got.zip"
    got = cli.json("files", "get", digest, "-o", str(out))
    assert got["bytes"] == out.stat().st_size
    assert not (tmp_path / "got.zip.part").exists()
    if shutil.which("7z"):
        done = subprocess.run(
            ["7z", "x", "-so", "-pinfected", str(out)], capture_output=True, check=True
        )
        assert done.stdout == DATA
    missing = cli("files", "get", "f" * 64, "-o", str(tmp_path / "none.zip"))
    assert_one_line_error(missing, 1)
    assert not (tmp_path / "none.zip").exists()


def test_kill_process_params_from_the_cli(cli: Cli, agent: ResponseAgent) -> None:
    job = cli.json(
        "jobs", "create", "--type", "KillProcess", "--station", agent.agent_id,
        "--pid", "4242", "--tree",
    )  # fmt: skip
    assert job["params"] == {"pid": 4242, "tree": True}
    bad = cli("jobs", "create", "--type", "KillProcess", "--station", agent.agent_id, "--pid", "1")
    assert "params.pid" in assert_one_line_error(bad, 1)


def test_hunts_from_the_cli(cli: Cli, agent: ResponseAgent, tmp_path: Path) -> None:
    created = cli.json(
        "hunts", "create", "--question", "FindFile", "--glob", "*.so", "--all",
        "--expires-in", "600",
    )  # fmt: skip
    hunt_id = created["id"]
    assert created["state"] == "active"
    [job] = [j for j in agent.jobs() if j["job_type"] == "Hunt"]
    found = {"found": True, "matches": [{"path": "/lib/x.so"}], "scanned": 1, "truncated": False}
    assert agent.report(job["job_id"], result=found).status_code == 200
    # --wait returns once every targeted station answered (all of them did).
    waited = cli.json("hunts", "show", hunt_id, "--wait", "5")
    assert waited["progress"]["done"] >= 1
    assert agent.agent_id in [r["station_id"] for r in waited["results"] if r["found"]]
    listed = cli.json("hunts", "list", "--state", "active")
    assert hunt_id in [h["id"] for h in listed["items"]]
    out = tmp_path / "hunt.csv"
    assert cli.json("hunts", "results", hunt_id, "--format", "csv", "-o", str(out))["bytes"] > 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert {"station_id": str(agent.agent_id), "found": "true"}.items() <= next(
        r for r in rows if r["station_id"] == str(agent.agent_id)
    ).items()
    ndjson = tmp_path / "hunt.ndjson"
    cli.json("hunts", "results", hunt_id, "--format", "ndjson", "-o", str(ndjson))
    assert all(json.loads(line)["station_id"] for line in ndjson.read_text().splitlines())
    stopped = cli.json("hunts", "stop", hunt_id)
    assert stopped["state"] == "stopped"
    assert_one_line_error(cli("hunts", "stop", hunt_id), 1)
    assert_one_line_error(cli("hunts", "create", "--glob", "x"), 2)  # no target


def test_rules_approve_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    script = tmp_path / "collect.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    added = cli.json("rules", "add", "script", "cli-collect", str(script))
    assert added["approved_at"] is None
    approved = cli.json("rules", "approve", "cli-collect", "1")
    assert approved["approved_by"] == "admin"
    versions = cli("rules", "versions", "cli-collect")
    assert versions.returncode == 0, versions.stderr
    assert "admin" in versions.stdout
    assert cli.json("rules", "unapprove", "cli-collect", "1")["approved_at"] is None
