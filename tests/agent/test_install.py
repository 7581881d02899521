"""``garrison-agent install``: the unit it writes, and the one-line install a real
``garrison serve`` hands out, run by a real agent into a temporary root."""

from __future__ import annotations

import hashlib
import shlex
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from garrison.agent import config as configmod
from garrison.agent.errors import UsageProblem
from garrison.agent.install import fingerprint
from garrison.agent.service import unit_text
from tests.agent.helpers import agent_env, run_agent
from tests.live import LiveServer, start_server
from tests.support import wait_for

UUID = "C0FFEE00-1234-4321-AAAA-0000000051A1"


def test_fingerprints_are_normalised_and_checked() -> None:
    hexa = "AB:" * 31 + "CD"
    assert fingerprint(hexa) == "ab" * 31 + "cd"
    assert fingerprint("") == ""
    with pytest.raises(UsageProblem, match="64 hex digits"):
        fingerprint("ab" * 31)
    with pytest.raises(UsageProblem):
        fingerprint("zz" * 32)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_unit_is_valid_for_systemd(tmp_path: Path) -> None:
    unit = tmp_path / "garrison-agent.service"
    unit.write_text(unit_text(sys.executable, "/var/lib/garrison-agent"))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "StateDirectory=garrison-agent" in unit.read_text()
    elsewhere = unit_text("/opt/garrison-agent/bin/garrison-agent", "/srv/agent")
    assert "StateDirectory" not in elsewhere
    assert "Environment=GARRISON_AGENT_STATE_DIR=/srv/agent" in elsewhere
    with pytest.raises(ValueError, match="absolute"):
        unit_text("garrison-agent")


class Admin:
    def __init__(self, server: LiveServer) -> None:
        self.server = server

    def call(self, method: str, path: str, **kw: Any) -> Any:
        answer = httpx.request(
            method,
            f"{self.server.url}/admin/v1{path}",
            headers={"Authorization": f"Bearer {self.server.token}"},
            timeout=30,
            verify=ssl.create_default_context(cafile=self.server.ca_file),
            **kw,
        )
        assert answer.status_code < 300, answer.text
        return answer.json()

    def installations(self) -> list[dict[str, Any]]:
        page = self.call("GET", "/events", params={"type": "agent_installation"})
        return sorted(page["items"], key=lambda e: int(e["seq"]))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = start_server(tmp_path / "data", tls=True)
    yield srv
    srv.stop()


@pytest.mark.slow
def test_the_install_command_of_a_real_server_installs_a_real_agent(
    server: LiveServer, tmp_path: Path
) -> None:
    admin = Admin(server)
    pin = hashlib.sha256(ssl.PEM_cert_to_DER_cert(server.ca_file.read_text())).hexdigest()
    key = admin.call("POST", "/enrollment-keys", json={"uses": 2})["key"]
    line = admin.call("GET", f"/enrollment-keys/{key}/install-command")["command"]
    words = shlex.split(line)
    assert words[:2] == ["garrison-agent", "install"]
    assert words[words.index("--ca-sha256") + 1] == pin  # the server's own CA, pinned
    root = tmp_path / "root"
    env = agent_env(tmp_path / "unused", UUID)

    refused = run_agent(env, *[*words[1:-1], "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ"], "--root", str(root))
    assert refused.returncode == 5, refused.stderr
    assert "enrollment refused: unknown enrollment key" in refused.stderr
    assert not (root / "etc/systemd/system/garrison-agent.service").exists()

    done = run_agent(env, *words[1:], "--root", str(root))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    state = root / "var/lib/garrison-agent"
    config = configmod.load(state / "agent.toml")
    assert config.server.url == server.url
    assert config.server.ca_sha256 == pin
    unit = (root / "etc/systemd/system/garrison-agent.service").read_text()
    program = Path(sys.executable).parent / "garrison-agent"
    assert f"ExecStart={program} run" in unit
    assert "Environment=GARRISON_AGENT_STATE_DIR=/var/lib/garrison-agent" in unit
    if shutil.which("systemctl"):  # enabled offline: systemd is not running in the root
        wants = root / "etc/systemd/system/multi-user.target.wants/garrison-agent.service"
        assert wants.is_symlink()
        assert "not started: systemd is not running below --root" in done.stderr

    def completed() -> bool:
        return [e["data"]["event"] for e in admin.installations()] == [2, 1]

    wait_for(completed, timeout=20, what="agent_installation rejected, then completed")
    rejected, finished = admin.installations()
    station = next(s for s in admin.call("GET", "/stations")["items"] if s["uuid"] == UUID)
    assert finished["station_id"] == station["id"]
    assert finished["data"]["id"] == rejected["data"]["id"]  # one installation, two runs
    assert finished["data"]["sessionid"] != rejected["data"]["sessionid"]
    assert finished["data"]["message"] == ""
    assert "unknown enrollment key" in rejected["data"]["message"]

    # The installed agent works from its state: its status, and a State report.
    env = agent_env(state, UUID)
    status = run_agent(env, "status")
    assert f"enrolled:    agent id {station['id']} at {server.url}" in status.stdout
    report = run_agent(env, "-t", "State")
    assert report.returncode == 0, report.stderr
