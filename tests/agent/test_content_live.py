"""Real processes: ``garrison serve`` and ``garrison-agent`` (the daemon, or tasks by hand)
exchanging signed content (issue 15, CONTENT-WIRE.md).

- a YARA rule uploaded through ``POST /admin/v1/rules`` reaches a running agent within one
  check-in, and an on-demand scan then detects a file only that rule matches;
- a key rotation reaches the agent and content signed with the new key is accepted;
- a bundle tampered with after signing (its bytes changed in the server's database, around
  every check) is refused, the reason reaches the server, the previous version keeps
  scanning;
- a plain-HTTP UpdateSignatures source is refused by default.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from garrison.agent import config as configmod
from garrison.server.content.models import RuleVersion
from garrison.server.store.engine import Database
from tests.agent.helpers import agent_env, run_agent
from tests.agent.test_live import UUID, Admin
from tests.agent.test_sensors_live import Daemon
from tests.live import LiveServer, start_server
from tests.support import wait_for

pytestmark = pytest.mark.slow
pytest.importorskip("yara")
LONG_POLL = 2  # seconds: one check-in cycle of these agents
# One check-in, then the update itself: the manifest, the file, YARA tried in a child
# process, the engine loaded, the State sent; on a loaded machine.
ONE_CHECK_IN = LONG_POLL + 20


def rule(marker: str, threat: str) -> str:
    return (
        f'rule {threat.replace(".", "_")} {{ meta: threat_name = "{threat}" '
        f'strings: $a = "{marker}" condition: $a }}\n'
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


def _enroll(server: LiveServer, tmp_path: Path) -> dict[str, str]:
    env = agent_env(tmp_path / "agent", UUID)
    done = run_agent(env, "-s", server.url, "-t", "Enrollment", "-k", Admin(server).key())
    assert done.returncode == 0, done.stderr
    path = tmp_path / "agent" / "agent.toml"
    config = configmod.load(path)
    config.daemon.long_poll = LONG_POLL
    config.sensors.enabled = False  # not what is tested here; nor is root needed
    config.scan.action = "none"  # the samples stay where they are, to be scanned again
    configmod.save(path, config)
    return env


def _ok(done: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


def _modules(admin: Admin, station: int) -> dict[str, dict[str, Any]]:
    try:
        state = admin.call("GET", f"/stations/{station}/state")
    except AssertionError:  # 404: no State yet
        return {}
    return {m["name"]: m for m in state["modules"]}


def _running(admin: Admin, station: int, name: str) -> int | None:
    module = _modules(admin, station).get(name)
    return int(module["version"]) if module and "version" in module else None


def _upload(admin: Admin, kind: str, name: str, content: str) -> dict[str, Any]:
    found: dict[str, Any] = admin.call(
        "POST", "/rules", json={"kind": kind, "name": name, "content": content}
    )
    return found


def _scan_job(admin: Admin, station: int, target: Path) -> list[dict[str, Any]]:
    job = admin.job("Scan", station, {"path": str(target)}, priority=3)
    wait_for(
        lambda: admin.call("GET", f"/jobs/{job}")["targets"][0]["status"],
        lambda status: status in ("successful", "failed"),
        timeout=60,
        what="the Scan job done",
        every=0.3,
    )
    assert admin.call("GET", f"/jobs/{job}")["targets"][0]["status"] == "successful"
    alerts: list[dict[str, Any]] = admin.call("GET", "/alerts", params={"job_id": job})["items"]
    return alerts


def test_a_yara_rule_reaches_a_running_agent_and_a_rotation_follows(
    server: LiveServer, tmp_path: Path
) -> None:
    admin = Admin(server)
    env = _enroll(server, tmp_path)
    station = admin.station_id()
    pinned = json.loads((tmp_path / "agent" / "content-keys.json").read_text())
    status = admin.call("GET", "/content")
    assert pinned["server_id"] == status["server_id"]
    assert [k["key_id"] for k in pinned["keys"]] == [status["key_id"]]

    target = tmp_path / "scanme"
    target.mkdir()
    marked = target / "only-the-rule.txt"
    marked.write_text("padding garrison live content marker 51c2 padding\n")
    (target / "clean.txt").write_text("nothing to see\n")

    daemon = Daemon(env, tmp_path / "agent.log")
    daemon.start()
    try:
        wait_for(lambda: admin.events("CONNECTED"), timeout=30, what="CONNECTED", every=0.3)
        # Nothing matches the file yet: the packaged base is EICAR only.
        assert _scan_job(admin, station, target) == []

        added = _upload(admin, "yara", "live-yara", rule("live content marker 51c2", "Live.Yara"))
        assert added["version"] == 1
        wait_for(
            lambda: _running(admin, station, "live-yara"),
            lambda version: version == 1,
            timeout=ONE_CHECK_IN,
            what="the new rule set running on the agent (State)",
            every=0.2,
        )
        fleet = admin.call("GET", "/content/fleet")
        (mine,) = [s for s in fleet["stations"] if s["station_id"] == station]
        assert mine["content_serial"] == fleet["serial"]
        assert not mine["behind"]
        module = _modules(admin, station)["live-yara"]
        assert module["sha256"] == added["sha256"]
        assert module["mod_status"] == "up-to-date"
        bases = admin.events("virus_bases_received")
        assert any(
            data.get(f"name_{i}") == "live-yara" and data.get(f"version_{i}") == "1"
            for data in (b["data"] for b in bases)
            for i in range(int(data.get("count", 0)))
        )

        alerts = _scan_job(admin, station, target)
        assert [(a["filepath"], a["threat_name"]) for a in alerts] == [(str(marked), "Live.Yara")]

        # A key rotation: the agent walks to the new key; what it signs is accepted.
        rotated = admin.call("POST", "/content-key/rotate", json={"overlap_hours": 168})
        new_key = admin.call("GET", "/content")["key_id"]
        assert new_key != status["key_id"], rotated
        second = rule("live content marker 77d0", "Live.Yara.Two")
        _upload(admin, "yara", "live-yara", second)
        wait_for(
            lambda: _running(admin, station, "live-yara"),
            lambda version: version == 2,
            timeout=ONE_CHECK_IN,
            what="version 2, signed with the new key, running on the agent",
            every=0.2,
        )
        trusted = json.loads((tmp_path / "agent" / "content-keys.json").read_text())
        keys = {k["key_id"]: k for k in trusted["keys"]}
        assert set(keys) == {status["key_id"], new_key}
        assert keys[status["key_id"]]["valid_until"]
        envelope = json.loads(
            (tmp_path / "agent" / "content" / "current" / "manifest.json").read_text()
        )
        assert envelope["key_id"] == new_key
        assert not [e for e in admin.events("station_update_failed")]
    finally:
        log = daemon.stop()
    assert "content serial" in log


def test_a_tampered_bundle_is_refused_and_the_previous_version_scans(
    server: LiveServer, tmp_path: Path
) -> None:
    admin = Admin(server)
    env = _enroll(server, tmp_path)
    station = admin.station_id()
    first = _upload(admin, "yara", "live-yara", rule("tamper test marker one", "Tamper.One"))
    out = _ok(run_agent(env, "-t", "Getjobs"))
    assert "signed content installed" in out
    sample = tmp_path / "sample.txt"
    sample.write_text("tamper test marker one\n")
    assert "1 malware" in _ok(run_agent(env, "-t", "Scan", "--path", str(sample)), code=8)

    second = _upload(admin, "yara", "live-yara", rule("tamper test marker two", "Tamper.Two"))
    assert second["version"] == 2
    # The bytes change in the server's database after the manifest named (signed) their
    # hash: what any storage or transport fault, or an intruder, would do.
    database = Database(f"sqlite:///{server.data_dir / 'garrison.db'}")
    try:
        with database.transaction() as session:
            session.execute(
                update(RuleVersion)
                .where(RuleVersion.sha256 == second["sha256"])
                .values(content=rule("tamper test marker two", "Tamper.Evil"))
            )
    finally:
        database.dispose()
    out = _ok(run_agent(env, "-t", "Getjobs"))
    assert "signed content refused" in out
    assert "does not match the signed manifest" in out

    failed = wait_for(
        lambda: admin.events("station_update_failed"),
        timeout=30,
        what="station_update_failed on the server",
        every=0.3,
    )
    assert "does not match the signed manifest" in failed[0]["data"]["description"]
    assert int(failed[0]["data"]["from_revision"]) < int(failed[0]["data"]["to_revision"])
    # The previous version still scans, and the agent says it runs it.
    assert "1 malware" in _ok(run_agent(env, "-t", "Scan", "--path", str(sample)), code=8)
    clean = tmp_path / "two.txt"
    clean.write_text("tamper test marker two\n")
    assert "0 malware" in _ok(run_agent(env, "-t", "Scan", "--path", str(clean)))
    _ok(run_agent(env, "-t", "State"))
    assert _running(admin, station, "live-yara") == 1
    assert _modules(admin, station)["live-yara"]["sha256"] == first["sha256"]
    # Refused for good: the next check-in does not fetch or report it again.
    out = _ok(run_agent(env, "-t", "Getjobs"))
    assert "signed content" not in out
    assert "content:     serial" in _ok(run_agent(env, "status"))


def test_a_plain_http_update_signatures_source_is_refused_by_default(
    server: LiveServer, tmp_path: Path
) -> None:
    admin = Admin(server)
    env = _enroll(server, tmp_path)
    station = admin.station_id()
    job = admin.job("UpdateSignatures", station, {"source": f"{server.url}/evil.hsb"})
    _ok(run_agent(env, "-t", "Getjobs"))
    out = run_agent(env, "-t", "Runjobs")
    assert out.returncode == 7, out.stdout + out.stderr
    target = admin.call("GET", f"/jobs/{job}")["targets"][0]
    assert target["status"] == "failed"
    assert "plain-HTTP" in target["message"]
    assert "refused" in target["message"]
    assert not (tmp_path / "agent" / "signatures" / "evil.hsb").exists()
    # Without a source the same job type fetches the signed assignment.
    job = admin.job("UpdateSignatures", station, {})
    _ok(run_agent(env, "-t", "Getjobs"))
    _ok(run_agent(env, "-t", "Runjobs"))
    target = admin.call("GET", f"/jobs/{job}")["targets"][0]
    assert target["status"] == "successful", target
