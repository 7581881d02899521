"""Real processes: a ``garrison serve`` and the real ``garrison-agent`` CLI against it."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.common import free_port
from garrison.agent import config as configmod
from tests.agent.helpers import AGENT, EICAR_SHA256, agent_env, eicar, run_agent, write_eicar
from tests.live import LiveServer, start_server
from tests.support import wait_for

pytestmark = pytest.mark.slow
UUID = "C0FFEE00-1234-4321-AAAA-000000000001"


class Admin:
    def __init__(self, server: LiveServer) -> None:
        self.server = server

    def call(self, method: str, path: str, **kw: Any) -> Any:
        response = httpx.request(
            method,
            f"{self.server.url}/admin/v1{path}",
            headers={"Authorization": f"Bearer {self.server.token}"},
            timeout=30,
            **kw,
        )
        assert response.status_code < 300, response.text
        return response.json()

    def key(self) -> str:
        return str(self.call("POST", "/enrollment-keys", json={"uses": 10})["key"])

    def job(self, job_type: str, station: int, params: dict[str, Any], priority: int = 2) -> int:
        body = {"type": job_type, "station_ids": [station], "priority": priority, "params": params}
        return int(self.call("POST", "/jobs", json=body)["id"])

    def station_id(self) -> int:
        items = self.call("GET", "/stations")["items"]
        return int(next(s["id"] for s in items if s["uuid"] == UUID))

    def events(self, *types: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.call("GET", "/events", params={"type": list(types)})[
            "items"
        ]
        return items


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


def _ok(done: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


def test_cli_errors_without_a_server(tmp_path: Path) -> None:
    env = agent_env(tmp_path / "agent", UUID)
    done = run_agent(env, "-t", "Getjobs")
    assert done.returncode == 3
    assert "not enrolled" in done.stderr
    dead = f"http://127.0.0.1:{free_port()}"
    done = run_agent(env, "-s", dead, "-t", "Enrollment", "-k", "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA")
    assert done.returncode == 4
    assert "unreachable" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert run_agent(env, "-t", "Bogus").returncode == 2
    assert run_agent(env, "--bogus-option").returncode == 2
    assert run_agent(env, "-s", dead, "-t", "Enrollment").returncode == 2  # no key
    done = run_agent(env, "quarantine", "restore", "nope")
    assert done.returncode == 9
    for done in (run_agent(env, "-t", "Getjobs"), run_agent(env, "-t", "Bogus")):
        assert "Traceback" not in done.stderr


def test_enroll_scan_quarantine_restore(server: LiveServer, tmp_path: Path) -> None:
    admin = Admin(server)
    state = tmp_path / "agent"
    env = agent_env(state, UUID)
    done = run_agent(
        env, "-s", server.url, "-t", "Enrollment", "-k", "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA"
    )
    assert done.returncode == 5
    assert "enrollment refused" in done.stderr
    key = admin.key()
    _ok(run_agent(env, "-s", server.url, "-t", "Enrollment", "-k", key))
    assert (state / "agent.json").stat().st_mode & 0o777 == 0o600
    station = admin.station_id()
    _ok(run_agent(env, "-s", server.url, "-t", "Enrollment", "-k", key))
    assert admin.station_id() == station  # re-enrollment keeps the station

    target = tmp_path / "scanme"
    write_eicar(target / "eicar.com")
    (target / "clean.txt").write_text("nothing here\n")
    job = admin.job("Scan", station, {"path": str(target)})
    assert "1 new job" in _ok(run_agent(env, "-t", "Getjobs"))
    out = _ok(run_agent(env, "-t", "Runjobs"))
    assert f"job {job} Scan: successful" in out

    assert admin.call("GET", f"/jobs/{job}")["targets"][0]["status"] == "successful"
    scans = admin.call("GET", "/scans", params={"job_id": job})["items"]
    assert len(scans) == 1
    assert (scans[0]["scanned_count"], scans[0]["malware_count"], scans[0]["progress"]) == (
        2,
        1,
        100,
    )
    alerts = admin.call("GET", "/alerts", params={"job_id": job})["items"]
    assert len(alerts) == 1
    assert alerts[0]["filepath"] == str(target / "eicar.com")
    assert alerts[0]["info"]["sha256"] == EICAR_SHA256
    assert alerts[0]["action"] == "quarantined"
    receipts = admin.events("RECEIPT")
    assert [r["data"]["JOB_ID"] for r in receipts] == [job]

    assert not (target / "eicar.com").exists()
    listing = _ok(run_agent(env, "quarantine", "list"))
    entry_id = listing.split("\t")[0]
    assert str(target / "eicar.com") in listing
    _ok(run_agent(env, "quarantine", "restore", entry_id))
    assert (target / "eicar.com").read_bytes() == eicar()

    # The Armadito checksum holds the detection time to the second: a second finding of
    # the same file within that second is the same alert, so the scan by hand waits it out.
    first_seen = dt.datetime.fromisoformat(alerts[0]["detection_time"])
    next_second = first_seen.replace(microsecond=0) + dt.timedelta(seconds=1)
    wait_for(lambda: dt.datetime.now(dt.UTC) >= next_second, timeout=2, what="the next second")
    # By hand: -t Scan finds it again (exit 8), -wr is Armadito's spelling of --wr.
    out = _ok(run_agent(env, "-t", "Scan", "--path", str(target)), code=8)
    assert "1 malware" in out
    assert len(admin.call("GET", "/alerts")["items"]) == 2
    assert "no stored job" in _ok(run_agent(env, "-t", "Runjobs", "-wr", "1"))

    _ok(run_agent(env, "-t", "State"))
    state_out = admin.call("GET", f"/stations/{station}/state")
    assert state_out["modules"][0]["name"] == "garrison-hash"
    _ok(run_agent(env, "-t", "AVConfig"))
    _ok(run_agent(env, "-t", "Scheduler"))


def test_server_down_messages_queue_and_arrive_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    try:
        admin = Admin(server)
        env = agent_env(tmp_path / "agent", UUID)
        _ok(run_agent(env, "-s", server.url, "-t", "Enrollment", "-k", admin.key()))
        station = admin.station_id()
        target = tmp_path / "scanme"
        write_eicar(target / "eicar.com")
        (target / "clean.txt").write_text("clean\n")
        job = admin.job("Scan", station, {"path": str(target)})
        selftest = admin.job("SelfTest", station, {"investigation_id": "inv-7"}, priority=3)
        _ok(run_agent(env, "-t", "Getjobs"))
    finally:
        server.stop()

    # The server is gone: jobs still run, everything they send waits in the spool.
    done = run_agent(env, "-t", "Runjobs")
    assert done.returncode == 4, done.stderr
    assert "kept in the spool" in done.stderr
    assert run_agent(env, "-t", "State").returncode == 4
    assert not (target / "eicar.com").exists()  # quarantined offline

    server = start_server(data)  # same data, new port
    try:
        admin = Admin(server)
        out = _ok(run_agent(env, "-s", server.url, "-t", "Alerts"))
        assert "0 left" in out
        assert "0 queued message(s) sent" in _ok(run_agent(env, "-t", "Alerts"))
        jobs = {j: admin.call("GET", f"/jobs/{j}")["targets"][0] for j in (job, selftest)}
        assert {t["status"] for t in jobs.values()} == {"successful"}
        assert len(admin.call("GET", "/alerts", params={"job_id": job})["items"]) == 1
        scans = admin.call("GET", "/scans", params={"job_id": job})["items"]
        assert [(s["progress"], s["malware_count"]) for s in scans] == [(100, 1)]
        receipts = admin.events("RECEIPT")
        assert sorted(r["data"]["JOB_ID"] for r in receipts) == sorted([job, selftest])
        assert {r["data"]["INVESTIGATION_ID"] for r in receipts} == {str(job), "inv-7"}
        assert len(admin.events("SELF_TEST")) == 1
        assert admin.call("GET", f"/stations/{station}/state")["global_status"]
    finally:
        server.stop()


def test_daemon_long_poll_events_and_sigterm(server: LiveServer, tmp_path: Path) -> None:
    admin = Admin(server)
    env = agent_env(tmp_path / "agent", UUID)
    _ok(run_agent(env, "-s", server.url, "-t", "Enrollment", "-k", admin.key()))
    station = admin.station_id()
    # A short long-poll: the server holds a pending poll until it expires, even at shutdown.
    config = configmod.load(tmp_path / "agent" / "agent.toml")
    config.daemon.long_poll = 5
    config.sensors.file = False  # it would mark the host's root filesystem (its defaults)
    configmod.save(tmp_path / "agent" / "agent.toml", config)
    daemon = subprocess.Popen(
        [*AGENT, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        connected = wait_for(
            lambda: admin.events("CONNECTED"), timeout=30, what="a CONNECTED event", every=0.3
        )
        assert connected[0]["data"]["IS_SEGREGATED"] in (0, False)
        assert admin.events("STARTING_UP")
        time.sleep(1)  # the long-poll is waiting now
        created = time.monotonic()
        job = admin.job("SelfTest", station, {}, priority=3)
        wait_for(
            lambda: admin.call("GET", f"/jobs/{job}")["targets"][0]["status"],
            lambda status: status == "successful",
            timeout=20,
            what="the SelfTest job successful",
            every=0.3,
        )
        assert time.monotonic() - created < 15  # long-poll, not the once-a-minute cron
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, out
    assert "Traceback" not in out
    assert len(admin.events("SHUTTING_DOWN")) == 1
