"""The other response jobs (ListConnections, ListServices, ListSessions, the FindFile hunt),
the Runjobs ``result`` and its cap, and the ``CLOUD_NOTIFICATION`` receipt at Getjobs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.context import Agent
from garrison.agent.errors import JobError
from garrison.agent.jobs import HANDLERS, codes, findfile, services
from garrison.agent.jobs import result as resultmod
from garrison.agent.jobs.params import Reply
from garrison.agent.jobstore import Job, JobStore
from garrison.agent.sensors.utmp import USER_PROCESS, UtmpRecord, pack_record
from garrison.agent.state import StateDir
from garrison.agent.tasks import enrollment, getjobs, runjobs
from garrison.common.catalogue import CATALOGUE
from garrison.common.vocabulary import JobType
from tests.agent.content_fake import FakeContentServer


@pytest.fixture
def fake() -> Iterator[FakeContentServer]:
    server = FakeContentServer()
    yield server
    server.close()


@pytest.fixture
def agent(tmp_path: Path, fake: FakeContentServer, monkeypatch: pytest.MonkeyPatch) -> Agent:
    monkeypatch.setenv("GARRISON_AGENT_UUID", "AAAAAAAA-0000-0000-0000-000000000B0B")
    agent = Agent(StateDir(tmp_path / "state", explicit=True), fake.url)
    enrollment.run(agent, "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA")
    return agent


def run(agent: Agent, job_type: str, obj: dict[str, Any]) -> tuple[int, str, Any]:
    return runjobs.execute(agent, Job(4, job_type, 0, obj))


def hunt(agent: Agent, question: dict[str, Any], expires_in: int = 60) -> tuple[int, str, Any]:
    obj = {"hunt_id": 2, "question": question, "expires_at": int(time.time()) + expires_in}
    return run(agent, "Hunt", obj)


def test_every_response_type_has_a_handler() -> None:
    assert set(JobType) <= set(HANDLERS)


# -- ListConnections / ListServices / ListSessions ------------------------------------------


def test_list_connections_shows_a_listener_and_a_connection_of_this_process(agent: Agent) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        code, message, result = run(agent, "ListConnections", {})
        assert code == 0, message
        port = server.getsockname()[1]
        rows = result["connections"]
        listen = [r for r in rows if r["local_port"] == port and r["state"] == "LISTEN"]
        assert listen == [{"protocol": "tcp", "state": "LISTEN", "local_ip": "127.0.0.1",
                           "local_port": port, "remote_ip": "0.0.0.0", "remote_port": 0,
                           "pid": os.getpid(), "process": listen[0]["process"]}]  # fmt: skip
        out = [r for r in rows if r["remote_port"] == port and r["state"] == "ESTABLISHED"]
        assert [(r["local_port"], r["pid"]) for r in out] == [
            (client.getsockname()[1], os.getpid())
        ]
        assert result["truncated"] is False
    finally:
        for s in (accepted, client, server):
            s.close()


def test_list_services_without_systemd_fails_clearly(agent: Agent, tmp_path: Path) -> None:
    with pytest.raises(JobError) as caught:
        services.list_services(agent, Job(1, "ListServices", 0, {}), tmp_path / "no-systemd")
    assert "systemd is not running on this station" in caught.value.message
    if not services.SYSTEMD_RUNTIME.is_dir():  # this machine (a CI container) too
        code, message, result = run(agent, "ListServices", {})
        assert (code, result) == (codes.FAILED, None)
        assert "systemd is not running" in message


def test_systemctl_json_is_read() -> None:
    out = json.dumps([
        {"unit": "ssh.service", "load": "loaded", "active": "active", "sub": "running",
         "description": "OpenBSD Secure Shell server"},
        {"unit": "gone.service", "load": "not-found", "active": "inactive", "sub": "dead",
         "description": "gone.service"},
    ])  # fmt: skip
    assert services.parse(out) == [
        {"name": "ssh.service", "description": "OpenBSD Secure Shell server",
         "load": "loaded", "active": "active", "sub": "running"},
        {"name": "gone.service", "description": "gone.service", "load": "not-found",
         "active": "inactive", "sub": "dead"},
    ]  # fmt: skip
    with pytest.raises(JobError, match="not JSON"):
        services.parse("<html>")


def test_list_sessions_reads_utmp(agent: Agent, tmp_path: Path) -> None:
    utmp = tmp_path / "utmp"
    live = UtmpRecord(USER_PROCESS, os.getpid(), "pts/3", "ts/3", "alice", "10.0.0.9", 4,
                      1_700_000_000.5, "10.0.0.9")  # fmt: skip
    stale = UtmpRecord(
        USER_PROCESS, 2**22 + 7, "pts/4", "ts/4", "bob", "", 5, 1_700_000_100.0, None
    )  # fmt: skip  (its process is long gone: utmp forgot to close it)
    utmp.write_bytes(pack_record(live) + pack_record(stale))
    agent.config.sensors.utmp_path = str(utmp)
    code, _, result = run(agent, "ListSessions", {})
    assert code == 0
    assert result == {"sessions": [{"user": "alice", "tty": "pts/3", "host": "10.0.0.9",
                                    "pid": os.getpid(), "login_time": 1_700_000_000}],
                      "truncated": False}  # fmt: skip


# -- the FindFile hunt ----------------------------------------------------------------------


def tree(tmp_path: Path) -> tuple[Path, bytes]:
    root = tmp_path / "hunt"
    (root / "a" / "b" / "c").mkdir(parents=True)
    data = b"the file the hunt looks for " + os.urandom(16)
    (root / "a" / "wanted.bin").write_bytes(data)
    (root / "a" / "b" / "c" / "deep.bin").write_bytes(data)
    (root / "a" / "other.txt").write_text("nothing")
    (root / "link.bin").symlink_to(root / "a" / "wanted.bin")  # never followed
    (root / "dirlink").symlink_to(root / "a")
    os.mkfifo(root / "pipe.bin")  # not a regular file: never opened
    return root, data


def test_find_file_by_hash_glob_and_yara(agent: Agent, tmp_path: Path) -> None:
    root, data = tree(tmp_path)
    sha = hashlib.sha256(data).hexdigest()
    code, message, result = hunt(agent, {"type": "FindFile", "sha256": sha, "roots": [str(root)]})
    assert code == 0, message
    assert result["found"] is True
    assert result["truncated"] is False
    assert sorted(m["path"] for m in result["matches"]) == [
        str(root / "a" / "b" / "c" / "deep.bin"), str(root / "a" / "wanted.bin"),
    ]  # fmt: skip
    assert result["matches"][0]["sha256"] == sha
    assert result["scanned"] == 3
    code, _, shallow = hunt(
        agent, {"type": "FindFile", "sha256": sha, "roots": [str(root)], "max_depth": 1}
    )
    assert [m["path"] for m in shallow["matches"]] == [str(root / "a" / "wanted.bin")]
    code, _, by_name = hunt(agent, {"type": "FindFile", "glob": "*.txt", "roots": [str(root)]})
    assert [m["path"] for m in by_name["matches"]] == [str(root / "a" / "other.txt")]
    pytest.importorskip("yara")
    rule = 'rule hunt_marker { strings: $a = "the file the hunt looks for" condition: $a }'
    code, message, by_rule = hunt(agent, {"type": "FindFile", "yara": rule, "roots": [str(root)]})
    assert code == 0, message
    assert len(by_rule["matches"]) == 2
    code, message, _ = hunt(agent, {"type": "FindFile", "yara": "rule {", "roots": [str(root)]})
    assert code == codes.BAD_JOB
    assert "YARA" in message
    code, message, _ = hunt(
        agent, {"type": "FindFile", "yara": 'include "/etc/passwd"', "roots": [str(root)]}
    )
    assert code == codes.BAD_JOB


def test_find_file_not_found_and_bounded(agent: Agent, tmp_path: Path) -> None:
    root, _ = tree(tmp_path)
    code, _, result = hunt(agent, {"type": "FindFile", "sha256": "0" * 64, "roots": [str(root)]})
    assert code == 0
    assert result == {"found": False, "matches": [], "scanned": 3, "truncated": False}
    found = list(findfile.walk([str(root)], 32, time.monotonic() + 60, max_files=2))
    assert found[-1] is None
    assert len(found) == 3
    assert list(findfile.walk([str(root)], 32, time.monotonic() - 1)) == [None]


def test_find_file_skips_proc_sys_dev_and_pseudo_mounts() -> None:
    skip = findfile.special_mounts()
    assert "/proc" in skip
    walked = findfile.walk(["/proc", "/sys", "/dev"], 32, time.monotonic() + 10)
    assert list(walked) == []


def test_bad_hunts(agent: Agent, tmp_path: Path) -> None:
    question = {"type": "FindFile", "sha256": "0" * 64, "roots": [str(tmp_path)]}
    code, message, _ = hunt(agent, question, expires_in=-10)
    assert code == codes.REFUSED
    assert "expired" in message
    for bad in (
        {"type": "FindFile", "roots": [str(tmp_path)]},
        {"type": "FindFile", "sha256": "0" * 64, "glob": "*"},
        {"type": "FindFile", "glob": "*", "roots": ["relative"]},
        {"type": "FindFile", "glob": "*", "roots": ["/tmp/../etc"]},
        {"type": "AskNicely"},
    ):
        assert hunt(agent, bad)[0] == codes.BAD_JOB, bad
    assert run(agent, "Hunt", {"hunt_id": 2, "expires_at": 0})[0] == codes.BAD_JOB


def test_collect_file_hunt_uploads(agent: Agent, fake: FakeContentServer, tmp_path: Path) -> None:
    target = tmp_path / "collect.me"
    target.write_bytes(b"collected")
    fake.upload_jobs.add(4)
    code, message, result = hunt(agent, {"type": "CollectFile", "path": str(target)})
    assert code == 0, message
    assert result == {"path": str(target), "sha256": hashlib.sha256(b"collected").hexdigest(),
                      "size": 9}  # fmt: skip
    assert fake.uploads[result["sha256"]] == b"collected"


# -- the result in Runjobs ------------------------------------------------------------------


def test_a_result_larger_than_the_cap_is_shortened_and_marked() -> None:
    rows: list[dict[str, Any]] = [{"pid": i, "cmdline": "x" * 200} for i in range(20_000)]
    big: dict[str, Any] = {"processes": rows, "truncated": False}
    assert resultmod.size(big) > resultmod.MAX_BYTES
    capped = resultmod.cap(big)
    assert resultmod.size(capped) <= resultmod.MAX_BYTES
    assert capped["truncated"] is True
    assert 0 < len(capped["processes"]) < 20_000
    assert capped["processes"] == big["processes"][: len(capped["processes"])]
    small = {"found": False, "matches": []}
    assert resultmod.cap(small) is small
    text = {"stdout": "y" * (3 << 20), "exit_code": 0}
    cut = resultmod.cap(text)
    assert resultmod.size(cut) <= resultmod.MAX_BYTES
    assert cut["truncated"] is True
    assert cut["stdout"].startswith("yyy")
    assert cut["exit_code"] == 0


def test_runjobs_sends_the_result_and_partial_failures(
    agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = Reply("many", {"items": list(range(400_000)), "truncated": False})

    def partial(agent: Agent, job: Job) -> str:
        raise JobError("half done", codes.REFUSED, result={"killed": [1], "gone": []})

    monkeypatch.setitem(HANDLERS, "ListQuarantine", lambda agent, job: huge)
    monkeypatch.setitem(HANDLERS, "KillProcess", partial)
    JobStore(agent.state).add([
        {"job_id": 31, "job_type": "ListQuarantine", "obj": {"investigation_id": "job-31"}},
        {"job_id": 32, "job_type": "KillProcess", "obj": {"pid": 99}},
        {"job_id": 33, "job_type": "SelfTest", "obj": {}},
    ])  # fmt: skip
    runjobs.run(agent)
    sent = {m.body["job_id"]: m.body for m in agent.spool.pending() if m.path == "jobs"}
    first = sent[31]
    assert first["code"] == 0
    assert first["result"]["truncated"] is True
    assert resultmod.size(first["result"]) <= resultmod.MAX_BYTES
    second = sent[32]
    assert second["code"] == codes.REFUSED
    assert base64.b64decode(second["message"]).decode().strip() == "half done"
    assert second["result"] == {"killed": [1], "gone": [], "partial": True}
    assert "result" not in sent[33]  # a job type of before: the message only


# -- CLOUD_NOTIFICATION ----------------------------------------------------------------------


def test_getjobs_posts_a_cloud_notification_per_job_stored(
    agent: Agent, fake: FakeContentServer
) -> None:
    fake.jobs = [
        {"job_id": 41, "job_type": "ListProcesses", "job_priority": "2",
         "obj": {"investigation_id": "job-41"}},
        {"job_id": 42, "job_type": "Scan", "job_priority": "0", "obj": {"scan_path": "x"}},
    ]  # fmt: skip
    added = getjobs.run(agent)
    assert [j.id for j in added] == [41, 42]
    notes = [m.body for m in agent.spool.pending()
             if m.path == "events" and m.body["type"] == "CLOUD_NOTIFICATION"]  # fmt: skip
    assert [n["data"]["JOB_ID"] for n in notes] == [41, 42]
    first = notes[0]["data"]
    assert first["INVESTIGATION_ID"] == "job-41"
    assert first["NOTIFICATION"] == {"INVESTIGATION_ID": "job-41"}
    assert len(first["NOTIFICATION_ID"]) == 36
    assert first["NOTIFICATION_ID"].count("-") == 4
    assert notes[1]["data"]["INVESTIGATION_ID"] == "42"
    declared = {f.name for f in CATALOGUE["CLOUD_NOTIFICATION"].fields}
    assert set(first) <= declared
    fake.jobs = [{"job_id": 41, "job_type": "ListProcesses", "job_priority": "2", "obj": {}}]
    assert getjobs.run(agent) == []  # already stored: no second receipt
    assert sum(1 for m in agent.spool.pending() if m.body.get("type") == "CLOUD_NOTIFICATION") == 2
    agent.flush()
    posted = [b for p, b in fake.posted if p == "/api/events"]
    assert any(e["type"] == "CLOUD_NOTIFICATION" for body in posted for e in _events(body))


def _events(body: Any) -> list[dict[str, Any]]:
    """The events of one POST /api/events (a JSON array of events)."""
    return [e for e in body if isinstance(e, dict)] if isinstance(body, list) else []
