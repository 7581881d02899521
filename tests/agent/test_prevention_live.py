"""Real processes, as root, with real fanotify permission events (issue 16): ``garrison
serve`` and ``garrison-agent run``.

The agent marks only a tmpfs the test mounted: its exec scope and watched paths are set to
it (``[on_access] exec_scope`` and ``paths``), never the host's filesystems.

- a SHA-256 put on the block list through the admin API makes the exec of that file fail
  within one check-in, with ``process_start_blocked`` (and ``preventive_protection_report``)
  at the server; lifting it lets the file run again;
- the agent's own interpreter cannot be put on the block list (409 ``protected_hash``);
- on-access turned on from the server (AVConfig ``on-access:*``): an EICAR file in a watched
  directory cannot be opened, is quarantined, and ``threat_detected`` reaches the server.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from garrison.agent import config as configmod
from tests.agent.helpers import agent_env, eicar, mounted_tmpfs, run_agent
from tests.agent.test_live import UUID, Admin
from tests.agent.test_sensors_live import Daemon, _events
from tests.live import LiveServer, start_server
from tests.support import wait_for

pytestmark = pytest.mark.slow
LONG_POLL = 2
ONE_CHECK_IN = LONG_POLL + 20  # the check-in, the manifest and file, the engine swap


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    """The only filesystem the agent marks in these tests."""
    if os.geteuid() != 0:
        pytest.skip("fanotify permission events need root")
    with mounted_tmpfs("garrison-prevent-", "size=32m") as mount:
        yield mount


def _daemon(server: LiveServer, tmp_path: Path, tmpfs: Path, avconfig: bool = False) -> Daemon:
    env = agent_env(tmp_path / "agent", UUID)
    done = run_agent(env, "-s", server.url, "-t", "Enrollment", "-k", Admin(server).key())
    assert done.returncode == 0, done.stderr
    path = tmp_path / "agent" / "agent.toml"
    config = configmod.load(path)
    config.daemon.long_poll = LONG_POLL
    config.sensors.enabled = False  # not what is tested here
    config.on_access.exec_scope = [str(tmpfs)]  # never the host's filesystems
    configmod.save(path, config)
    if avconfig:  # what the administrator pushed, applied before the daemon starts
        done = run_agent(env, "-t", "AVConfig")
        assert done.returncode == 0, done.stderr
    daemon = Daemon(env, tmp_path / "agent.log")
    daemon.start()
    return daemon


def _probe(tmpfs: Path) -> tuple[Path, str]:
    """/bin/true with bytes appended (the loader ignores them): a SHA-256 of its own."""
    probe = tmpfs / "probe"
    probe.write_bytes(Path("/bin/true").read_bytes() + os.urandom(16))
    probe.chmod(0o755)
    return probe, hashlib.sha256(probe.read_bytes()).hexdigest()


def _runs(probe: Path) -> bool:
    try:
        return subprocess.run([str(probe)], check=False).returncode == 0
    except PermissionError:
        return False


def _post(server: LiveServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/admin/v1/blocklist",
        json=body,
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )


def _protected(admin: Admin, station: int) -> list[str]:
    try:
        state = admin.call("GET", f"/stations/{station}/state")
    except AssertionError:
        return []
    for item in state.get("avdetails", []):
        if item.get("attr") == "protected_sha256":
            return str(item.get("value", "")).split(";")
    return []


def test_a_blocked_hash_stops_its_exec_within_one_check_in(
    server: LiveServer, tmp_path: Path, tmpfs: Path
) -> None:
    admin = Admin(server)
    probe, sha = _probe(tmpfs)
    daemon = _daemon(server, tmp_path, tmpfs)
    try:
        station = admin.station_id()
        own = hashlib.sha256(Path(os.path.realpath(sys.executable)).read_bytes()).hexdigest()
        wait_for(
            lambda: _protected(admin, station), lambda found: own in found, timeout=60,
            what="the agent's protected hashes in its State", every=0.3,
        )  # fmt: skip
        refused = _post(server, {"sha256": own, "comment": "the agent's python"})
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "protected_hash"
        assert "interpreter" in refused.json()["message"]
        assert admin.call("GET", "/blocklist")["entries"] == []

        assert _runs(probe)  # nothing blocked yet (and nothing marked: the list is empty)
        added = _post(server, {"sha256": sha, "comment": "a probe"})
        assert added.status_code == 201, added.text
        assert [e["sha256"] for e in admin.call("GET", "/blocklist")["entries"]] == [sha]
        wait_for(lambda: not _runs(probe), timeout=ONE_CHECK_IN, what="the exec blocked")
        with pytest.raises(PermissionError):
            subprocess.run([str(probe)], check=False)

        blocked = wait_for(
            lambda: [
                e for e in _events(admin, type="process_start_blocked")
                if e["data"].get("sha256") == sha
            ],
            timeout=30, what="process_start_blocked at the server", every=0.3,
        )  # fmt: skip
        data = blocked[0]["data"]
        assert data["file_path"] == str(probe)
        assert data["block_reason"] == "blocklist"
        assert data["block_rule"] == f"hash:{sha}"
        assert data["size"] == probe.stat().st_size
        reports = wait_for(
            lambda: [
                e for e in _events(admin, type="preventive_protection_report")
                if e["data"].get("target_path") == str(probe)
            ],
            timeout=30, what="preventive_protection_report", every=0.3,
        )  # fmt: skip
        assert reports[0]["data"]["denied"] is True

        # Written around the server's check (straight into the rule set): the agent refuses
        # the content naming its interpreter, says so, and keeps the block list it has.
        current = admin.call("GET", "/rules/blocklist")["content"]
        admin.call("POST", "/rules", json={
            "kind": "blocklist", "name": "blocklist", "content": current + f"hash:{own}\n",
        })  # fmt: skip
        failed = wait_for(
            lambda: [
                e for e in _events(admin, type="station_update_failed")
                if "does not block itself" in e["data"].get("description", "")
            ],
            timeout=ONE_CHECK_IN, what="the agent refusing its own interpreter", every=0.3,
        )  # fmt: skip
        assert own in failed[0]["data"]["description"]
        assert not _runs(probe)  # the previous block list is still in force
        admin.call("POST", "/rules", json={"kind": "blocklist", "name": "blocklist",
                                           "content": current})  # fmt: skip

        lifted = admin.call("DELETE", f"/blocklist/{sha}")
        assert lifted["sha256"] == sha
        wait_for(lambda: _runs(probe), timeout=ONE_CHECK_IN, what="the exec allowed again")
    finally:
        log = daemon.stop()
    assert "Traceback" not in log, log


def test_an_eicar_file_in_a_watched_directory_is_denied_and_quarantined(
    server: LiveServer, tmp_path: Path, tmpfs: Path
) -> None:
    admin = Admin(server)
    watched, staging = tmpfs / "watched", tmpfs / "staging"
    watched.mkdir()
    staging.mkdir()
    desired = [
        {"attr": "on-access:enabled", "value": "1"},
        {"attr": "on-access:paths", "value": str(watched)},
        {"attr": "on-access:action", "value": "quarantine"},
        {"attr": "on-access:deadline", "value": "2"},
    ]
    admin.call("PUT", "/configs/avconfig/desired", json={"attributes": desired})
    daemon = _daemon(server, tmp_path, tmpfs, avconfig=True)
    try:
        status = wait_for(
            lambda: [
                e["data"] for e in _events(admin, type="prevention_status")
                if e["data"].get("state") == "running"
            ],
            timeout=30, what="prevention running", every=0.3,
        )  # fmt: skip
        assert status[0]["marked"] == str(watched)  # its mount, the tmpfs, is marked
        assert status[0]["on_access"] is True

        # Written elsewhere on the tmpfs, then moved in: its first open is in the watched
        # directory, so the open itself is what the agent must refuse.
        (staging / "eicar.com").write_bytes(eicar())
        target = watched / "eicar.com"
        os.rename(staging / "eicar.com", target)
        with pytest.raises(PermissionError):
            target.read_bytes()
        wait_for(lambda: not target.exists(), timeout=30, what="the file quarantined")
        quarantine = tmp_path / "agent" / "quarantine"
        wait_for(lambda: list(quarantine.glob("*")), timeout=10, what="a quarantine entry")

        # Written straight into the watched directory: scanned when closed, quarantined.
        direct = watched / "direct.com"
        direct.write_bytes(eicar())
        wait_for(lambda: not direct.exists(), timeout=30, what="the written file quarantined")

        threats = wait_for(
            lambda: [
                e for e in _events(admin, type="threat_detected")
                if e["data"].get("object") in (str(target), str(direct))
            ],
            lambda found: len(found) >= 2,
            timeout=30, what="threat_detected for both files", every=0.3,
        )  # fmt: skip
        assert {t["data"]["action"] for t in threats} == {"quarantined"}
        blocked = [
            e for e in _events(admin, type="file_open_blocked")
            if e["data"].get("file_path") == str(target)
        ]  # fmt: skip
        assert blocked
        assert blocked[0]["data"]["block_reason"] == "threat"
        clean = watched / "clean.txt"
        clean.write_text("nothing to see")
        assert clean.read_text() == "nothing to see"  # a clean file opens as before
    finally:
        log = daemon.stop()
    assert "Traceback" not in log, log
