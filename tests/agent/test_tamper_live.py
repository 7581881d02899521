"""Real processes in a network namespace of the test's own (issue 16 item 5).

The agent runs in a new network namespace joined to the host by a veth pair; the server
listens on the host's end.  While isolated:

- ``nft delete table inet garrison_isolation`` in the namespace: the table is back within
  5 s and ``isolation_tampered`` (removed, restored) reaches the server; a flushed chain
  (changed) likewise;
- the agent killed with SIGKILL and started again says so: ``STARTING_UP`` with
  ``UNCLEAN_STOP``;
- uninstall with a wrong token is refused (``agent_deinstalled`` false at the server); with
  the station's token from ``POST /admin/v1/stations/{id}/uninstall-token`` it goes
  through, lifts isolation and removes the state dir, and ``agent_deinstalled`` true
  follows at the server.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from garrison.agent import config as configmod
from tests.agent.helpers import AGENT, agent_env
from tests.agent.test_live import UUID, Admin
from tests.agent.test_sensors_live import _events
from tests.live import LiveServer, start_server
from tests.support import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or not (shutil.which("nft") and shutil.which("ip")),
        reason="needs root, nft and ip",
    ),
]
TABLE = "garrison_isolation"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _claim_octet() -> tuple[int, IO[bytes]]:
    """A /30 of 10.231.X.0/24 that no other test process holds: parallel test workers each
    make namespaces, and two veths with one address would take each other's traffic.  The
    claim is a lock on a file named by X, held until the namespace is deleted (and freed by
    the kernel if the test process dies)."""
    start = secrets.randbelow(200)
    for step in range(200):
        octet = 16 + (start + step) % 200
        lock = Path(tempfile.gettempdir()) / f"garrison-test-10.231.{octet}.lock"
        claim = lock.open("wb")
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            claim.close()
            continue
        return octet, claim
    raise RuntimeError("every 10.231.X.0/30 is held by another test")


class Namespace:
    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"gt-{tag}"
        self.octet, self.claim = _claim_octet()
        self.host_ip = f"10.231.{self.octet}.1"
        self.ns_ip = f"10.231.{self.octet}.2"
        self.veth = (f"gvh{tag}", f"gvn{tag}")

    def create(self) -> None:
        _ip("netns", "add", self.name)
        host, inner = self.veth
        _ip("link", "add", host, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", self.name)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", host)
        _ip("link", "set", host, "up")
        self.run("ip", "addr", "add", f"{self.ns_ip}/30", "dev", inner)
        self.run("ip", "link", "set", inner, "up")
        self.run("ip", "link", "set", "lo", "up")

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix(), *args], capture_output=True, text=True, timeout=60, check=False,
            env=env,
        )  # fmt: skip

    def table(self) -> str | None:
        done = self.run("nft", "list", "table", "inet", TABLE)
        return done.stdout if done.returncode == 0 else None

    def delete(self) -> None:
        subprocess.run(["ip", "link", "del", self.veth[0]], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
        self.claim.close()


@pytest.fixture
def netns() -> Iterator[Namespace]:
    ns = Namespace()
    try:
        ns.create()
    except RuntimeError as exc:
        ns.delete()
        pytest.skip(f"cannot make a network namespace here: {exc}")
    yield ns
    ns.delete()


@pytest.fixture
def server(tmp_path: Path, netns: Namespace) -> Iterator[LiveServer]:
    srv = start_server(tmp_path / "data", host=netns.host_ip)
    yield srv
    srv.stop()


class NsDaemon:
    def __init__(self, netns: Namespace, env: dict[str, str], log_path: Path) -> None:
        self.netns, self.env, self.log_path = netns, env, log_path
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [*self.netns.prefix(), *AGENT, "run"], env=self.env, stdout=log,
                stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip

    def stop(self, sig: int = signal.SIGTERM) -> None:
        # ip netns exec execs the agent: the process is the agent itself.
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _data(admin: Admin, kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in _events(admin, type=kind)]


def test_tampering_is_undone_and_reported(
    server: LiveServer, netns: Namespace, tmp_path: Path
) -> None:
    admin = Admin(server)
    state = tmp_path / "agent"
    env = agent_env(state, UUID)
    done = netns.run(*AGENT, "-s", server.url, "-t", "Enrollment", "-k", admin.key(), env=env)
    assert done.returncode == 0, done.stderr
    path = state / "agent.toml"
    config = configmod.load(path)
    config.daemon.long_poll = 2
    config.sensors.enabled = False
    config.devices.enabled = False
    configmod.save(path, config)
    (state / "agent.json").chmod(0o644)  # too wide: narrowed at start, with a warning
    daemon = NsDaemon(netns, env, tmp_path / "agent.log")
    daemon.start()
    try:
        station = wait_for(admin.station_id, timeout=30, what="the station", every=0.3)
        wait_for(lambda: _data(admin, "STARTING_UP"), timeout=30, what="STARTING_UP", every=0.3)
        assert (state / "agent.json").stat().st_mode & 0o777 == 0o600
        assert "narrowed to 0600" in (tmp_path / "agent.log").read_text()
        admin.job("IsolateNetwork", station, {})
        wait_for(netns.table, timeout=30, what="the isolation table", every=0.2)

        # Removed: back within 5 s, and reported.
        deleted = netns.run("nft", "delete", "table", "inet", TABLE)
        assert deleted.returncode == 0, deleted.stderr
        started = time.monotonic()
        wait_for(netns.table, timeout=5, what="the table back within 5 s", every=0.1)
        assert time.monotonic() - started < 5
        removed = wait_for(
            lambda: [d for d in _data(admin, "isolation_tampered") if d["change"] == "removed"],
            timeout=30, what="isolation_tampered (removed) at the server", every=0.3,
        )  # fmt: skip
        assert removed[0]["restored"] is True

        # Changed: a chain flushed is put back too.
        flushed = netns.run("nft", "flush", "chain", "inet", TABLE, "output")
        assert flushed.returncode == 0, flushed.stderr
        wait_for(
            lambda: netns.table() or "", lambda text: "dport" in text, timeout=5,
            what="the output chain's rules back", every=0.1,
        )  # fmt: skip
        wait_for(
            lambda: [d for d in _data(admin, "isolation_tampered") if d["change"] == "changed"],
            timeout=30, what="isolation_tampered (changed) at the server", every=0.3,
        )  # fmt: skip

        shown = admin.call("GET", f"/stations/{station}/isolation")
        assert shown["isolated"] is True
        assert shown["tampered"] >= 2
        assert shown["last_tampered"]["restored"] is True

        # Killed, not stopped: the next start says so.
        assert daemon.process is not None
        pid = daemon.process.pid
        daemon.stop(signal.SIGKILL)
        daemon.start()
        unclean = wait_for(
            lambda: [d for d in _data(admin, "STARTING_UP") if d.get("UNCLEAN_STOP")],
            timeout=30, what="STARTING_UP after an unclean stop", every=0.3,
        )  # fmt: skip
        assert unclean[0]["PREVIOUS_PID"] == pid
        assert netns.table() is not None  # isolation held through the restart

        # Uninstall: a wrong token is refused and reported; the station's token works.
        wrong = netns.run(*AGENT, "uninstall", "--token", "gu1.e30.AAAA", env=env)
        assert wrong.returncode == 7, wrong.stderr
        assert "uninstall refused" in wrong.stderr
        assert state.exists()
        refused = wait_for(
            lambda: [d for d in _data(admin, "agent_deinstalled") if d["state"] is False],
            timeout=30, what="the refused uninstall at the server", every=0.3,
        )  # fmt: skip
        assert "refused" in refused[0]["message"]
        token = admin.call("POST", f"/stations/{station}/uninstall-token", json={})["token"]
        done = netns.run(*AGENT, "uninstall", "--token", token, env=env)
        assert done.returncode == 0, done.stderr
        wait_for(
            lambda: [d for d in _data(admin, "agent_deinstalled") if d["state"] is True],
            timeout=30, what="agent_deinstalled at the server", every=0.3,
        )  # fmt: skip
        assert not state.exists()
        assert netns.table() is None  # isolation lifted
        assert daemon.process is not None
        daemon.process.wait(timeout=30)  # the daemon was stopped
    finally:
        daemon.stop()
