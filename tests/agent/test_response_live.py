"""Real processes (issue 17's Done-when): one ``garrison serve`` and real ``garrison-agent
run`` daemons exchanging response jobs and a hunt (RESPONSE-WIRE.md).

- ``ListProcesses`` shows a process the test started; ``KillProcess`` with ``tree`` kills a
  parent and the child it started;
- ``CLOUD_NOTIFICATION`` reaches the server when a job is downloaded (status ``downloaded``);
- ``GetFile`` brings back a file whose SHA-256 matches, downloadable as the zip;
- ``RunScript`` of a script not in the approved library is refused by the agent;
- a hunt for a file hash across three agents, one started after the hunt was created, finds
  the file on exactly the two that hold it.  The three agents share this machine, so each runs
  in a mount namespace of its own with a private tmpfs at the hunt's root: two hold the file;
- a ``threat_detected`` procedure kills the process running the detected file and collects
  the file (the detection from a signed hash list the agent got as content).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine

from garrison.agent import config as configmod
from tests.agent.helpers import AGENT, agent_env, run_agent
from tests.conftest import BACKENDS, EMPTY_TABLES, RESTART_SEQUENCES
from tests.live import LiveServer, start_server
from tests.support import wait_for

pytestmark = pytest.mark.slow
LONG_POLL = 2
DONE = ("successful", "failed", "cancelled")


class Admin:
    def __init__(self, server: LiveServer) -> None:
        self.server = server

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.server.url}/admin/v1{path}",
            headers={"Authorization": f"Bearer {self.server.token}", **(headers or {})},
            timeout=30,
            **kw,
        )

    def call(self, method: str, path: str, **kw: Any) -> Any:
        response = self.request(method, path, **kw)
        assert response.status_code < 300, response.text
        return response.json()

    def station(self, uuid: str) -> int:
        items = self.call("GET", "/stations", params={"limit": 500})["items"]
        return int(next(s["id"] for s in items if s["uuid"].upper() == uuid.upper()))

    def job(self, job_type: str, station: int, params: dict[str, Any]) -> int:
        body = {"type": job_type, "station_ids": [station], "priority": 3, "params": params}
        return int(self.call("POST", "/jobs", json=body)["id"])

    def target(self, job: int) -> dict[str, Any]:
        found: dict[str, Any] = self.call("GET", f"/jobs/{job}")["targets"][0]
        return found

    def finished(self, job: int, timeout: float = 60) -> dict[str, Any]:
        done: dict[str, Any] = wait_for(
            lambda: self.target(job),
            lambda target: target["status"] in DONE,
            timeout=timeout,
            what=f"job {job} finished",
            every=0.3,
        )
        return done

    def events(self, event_type: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.call(
            "GET", "/events", params={"type": event_type, "limit": 500}
        )["items"]
        return items


@dataclass
class Station:
    uuid: str
    id: int
    process: subprocess.Popen[str]
    log: Path

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.log.read_text()


class Fleet:
    """Enrolled agents, each a ``garrison-agent run`` daemon; with ``private`` the daemon
    runs in a mount namespace of its own where a tmpfs covers that directory (holding
    ``holds``, when given)."""

    def __init__(self, server: LiveServer, root: Path) -> None:
        self.server, self.root = server, root
        self.admin = Admin(server)
        self.stations: list[Station] = []

    def start(self, name: str, private: Path | None = None, holds: Path | None = None) -> Station:
        uuid = f"C0FFEE17-0000-4000-8000-{len(self.stations) + 1:012X}"
        state = self.root / name
        env = agent_env(state, uuid)
        key = self.admin.call("POST", "/enrollment-keys", json={"uses": 1})["key"]
        done = run_agent(env, "-s", self.server.url, "-t", "Enrollment", "-k", key)
        assert done.returncode == 0, done.stderr
        config = configmod.load(state / "agent.toml")
        config.daemon.long_poll = LONG_POLL
        config.sensors.enabled = False  # not what is tested here
        config.scan.action = "none"  # a detected file stays, for the procedure to collect
        configmod.save(state / "agent.toml", config)
        command = [*AGENT, "run"]
        if private is not None:
            copy = f'cp "{holds}" "{private}/" && ' if holds is not None else ""
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       f'mount -t tmpfs garrison-hunt "{private}" && {copy}exec "$@"', "sh",
                       *command]  # fmt: skip
        log = self.root / f"{name}.log"
        with log.open("w") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       text=True)  # fmt: skip
        station = Station(uuid, self.admin.station(uuid), process, log)
        self.stations.append(station)
        wait_for(
            lambda: (
                [e for e in self.admin.events("CONNECTED") if e.get("station_id") == station.id]
                or process.poll() is not None
            ),
            timeout=60,
            what=f"agent {name} connected",
            every=0.3,
        )
        assert process.poll() is None, log.read_text()
        return station

    def stop(self) -> None:
        for station in self.stations:
            station.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One server per backend for the whole module (its agents are started once too)."""
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_session_url")
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(EMPTY_TABLES)
            conn.exec_driver_sql(RESTART_SEQUENCES)
        engine.dispose()
    srv = start_server(tmp_path_factory.mktemp("response") / "data", url)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def fleet(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    group = Fleet(server, tmp_path_factory.mktemp("agents"))
    yield group
    group.stop()


@pytest.fixture(scope="module")
def first(fleet: Fleet) -> Station:
    return fleet.start("first")


def unzip(data: bytes, tmp_path: Path) -> bytes:
    """The one member of a download (an AES zip, password ``infected``), opened by 7z."""
    archive = tmp_path / "download.zip"
    archive.write_bytes(data)
    out = tmp_path / "unzipped"
    subprocess.run(["7z", "x", "-pinfected", f"-o{out}", "-y", str(archive)], check=True,
                   capture_output=True)  # fmt: skip
    (member,) = list(out.iterdir())
    return member.read_bytes()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_list_processes_then_kill_a_tree(fleet: Fleet, first: Station) -> None:
    admin = fleet.admin
    parent = subprocess.Popen(["/bin/sh", "-c", "sleep 300 & echo $!; wait"],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        wait_for(  # forked, then exec'd: until then the child is still "sh"
            lambda: Path(f"/proc/{child}/comm").read_text().strip() == "sleep",
            timeout=10,
            what="the child running sleep",
        )
        job = admin.job("ListProcesses", first.id, {})
        target = admin.finished(job)
        assert target["status"] == "successful", target
        listed = {p["pid"]: p for p in target["result"]["processes"]}
        assert listed[parent.pid]["ppid"] == os.getpid()
        assert listed[child]["ppid"] == parent.pid
        assert listed[child]["name"] == "sleep"

        job = admin.job("KillProcess", first.id, {"pid": parent.pid, "tree": True})
        target = admin.finished(job)
        assert target["status"] == "successful", target
        assert [k["pid"] for k in target["result"]["killed"]] == [child, parent.pid]
        assert parent.wait(10) == -signal.SIGKILL
        wait_for(lambda: not _alive(child), timeout=10, what="the child gone")
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_cloud_notification_marks_the_job_downloaded(fleet: Fleet, first: Station) -> None:
    admin = fleet.admin
    job = admin.job("ListSessions", first.id, {"investigation_id": "inv-17"})
    notes = wait_for(
        lambda: [e for e in admin.events("CLOUD_NOTIFICATION") if e["data"].get("JOB_ID") == job],
        timeout=30,
        what="the CLOUD_NOTIFICATION of the job",
        every=0.3,
    )
    assert notes[0]["data"]["INVESTIGATION_ID"] == "inv-17"
    assert notes[0]["data"]["NOTIFICATION"] == {"INVESTIGATION_ID": "inv-17"}
    target = admin.finished(job)
    assert target["status"] == "successful", target
    assert target.get("downloaded_at"), target  # it went through "downloaded"


@pytest.mark.skipif(shutil.which("7z") is None, reason="needs 7z (p7zip-full)")
def test_get_file_comes_back_as_the_zip(fleet: Fleet, first: Station, tmp_path: Path) -> None:
    admin = fleet.admin
    data = b"evidence " + os.urandom(200_000)
    sample = tmp_path / "evidence.bin"
    sample.write_bytes(data)
    job = admin.job("GetFile", first.id, {"path": str(sample)})
    target = admin.finished(job)
    assert target["status"] == "successful", target
    sha = hashlib.sha256(data).hexdigest()
    assert target["result"]["sha256"] == sha
    assert target["result"]["size"] == len(data)
    response = admin.request("GET", f"/files/{sha}")
    assert response.status_code == 200, response.text
    assert unzip(response.content, tmp_path) == data


def test_run_script_not_in_the_agents_signed_library_is_refused_by_the_agent(
    fleet: Fleet, first: Station
) -> None:
    """The server takes the job (the version is approved) but its manifest does not hold the
    script (the assignment leaves it out): the agent syncs once, then refuses (code 13)."""
    admin = fleet.admin
    admin.call("PUT", "/content/assignments/default", json={"rules": []})
    try:
        admin.call("POST", "/rules", json={"kind": "script", "name": "live-unassigned",
                                           "content": "#!/bin/sh\necho ran\n"})  # fmt: skip
        admin.call("POST", "/rules/live-unassigned/versions/1/approve")
        versions = admin.call("GET", "/rules/live-unassigned/versions")["versions"]
        sha = next(v["sha256"] for v in versions if v["version"] == 1)
        job = admin.job("RunScript", first.id, {"script": "live-unassigned", "sha256": sha})
        target = admin.finished(job)
        assert target["status"] == "failed", target
        assert target["code"] == 13, target
        assert "not in this station's signed approved library" in str(target["message"])
        assert not target.get("result")
    finally:
        admin.call("PUT", "/content/assignments/default", json={"rules": None})


@pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")
@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare(1) is not installed")
def test_a_hunt_finds_the_file_on_exactly_the_two_stations_that_hold_it(
    fleet: Fleet, first: Station, tmp_path: Path
) -> None:
    admin = fleet.admin
    data = b"hunted " + os.urandom(64)
    staged = tmp_path / "hunted.bin"
    staged.write_bytes(data)
    root = tmp_path / "hunt-root"  # each hunting agent mounts its own tmpfs here
    root.mkdir()
    holder = fleet.start("holder", private=root, holds=staged)
    empty = fleet.start("empty", private=root)
    sha = hashlib.sha256(data).hexdigest()
    hunt = admin.call("POST", "/hunts", json={
        "question": {"type": "FindFile", "sha256": sha, "roots": [str(root)]},
        "target": {"all": True}, "expires_in": 600,
    })["id"]  # fmt: skip
    late = fleet.start("late", private=root, holds=staged)  # joins after the hunt was made
    hunting = {holder.id, empty.id, late.id}

    def results() -> dict[int, dict[str, Any]]:
        view = admin.call("GET", f"/hunts/{hunt}")
        return {r["station_id"]: r for r in view["results"]}

    found = wait_for(
        results,
        lambda r: all(r.get(s, {}).get("found") is not None for s in hunting),
        timeout=90,
        what="the three hunting stations' answers",
        every=0.5,
    )
    # Every station answered (the first one too: its hunt root is the empty directory).
    assert {s for s, r in found.items() if r["found"]} == {holder.id, late.id}
    assert str(root / "hunted.bin") in str(found[holder.id])
    assert str(root / "hunted.bin") in str(found[late.id])


def _modules(admin: Admin, station: int) -> dict[str, Any]:
    response = admin.request("GET", f"/stations/{station}/state")
    if response.status_code != 200:
        return {}
    return {m["name"]: m for m in response.json()["modules"]}


def test_a_threat_detected_procedure_kills_the_process_and_collects_the_file(
    fleet: Fleet, first: Station, tmp_path: Path
) -> None:
    admin = fleet.admin
    binary = tmp_path / "threat" / "garrison-threat"
    binary.parent.mkdir()
    shutil.copyfile(shutil.which("sleep") or "/bin/sleep", binary)
    with binary.open("ab") as handle:
        handle.write(os.urandom(32))  # an image no other process on the machine runs
    binary.chmod(0o755)
    data = binary.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    rules = {"kind": "hashes", "name": "live-threat", "content": f"{sha}:{len(data)}:Live.Threat"}
    admin.call("POST", "/rules", json=rules)
    wait_for(
        lambda: "live-threat" in _modules(admin, first.id),
        timeout=60,
        what="the hash list running on the agent",
        every=0.5,
    )
    lua = (
        "local a = ...\n"
        "garrison.kill_process(a.id, {sha256 = a.sha256, tree = true})\n"
        "garrison.get_file(a.id, a.object)\n"
    )
    response = admin.request(
        "PUT", "/procedures/threat_detected", content=lua, headers={"Content-Type": "text/plain"}
    )
    assert response.status_code < 300, response.text
    running = subprocess.Popen([str(binary), "300"])
    try:
        admin.job("Scan", first.id, {"path": str(binary.parent)})
        wait_for(lambda: running.poll() is not None, timeout=90, what="the process killed",
                 every=0.3)  # fmt: skip
        assert running.returncode == -signal.SIGKILL
        files = wait_for(
            lambda: [f for f in admin.call("GET", "/files")["items"] if f["sha256"] == sha],
            timeout=60,
            what="the file collected",
            every=0.5,
        )
        assert files[0]["station_id"] == first.id
    finally:
        if running.poll() is None:
            running.kill()
        running.wait()
