"""Real processes: ``garrison serve``, ``garrison-agent run`` as root with its sensors, and
real execs the kernel's process connector reports."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.agent import config as configmod
from garrison.agent.sensors import procinfo
from garrison.agent.sensors.procconn import ProcConnector
from tests.agent.helpers import AGENT, agent_env, run_agent
from tests.agent.test_live import UUID, Admin
from tests.live import LiveServer, start_server
from tests.support import wait_for

pytestmark = pytest.mark.slow
# The parent the test controls: it runs the probe and waits for it.
PARENT = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def _connector_problem() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the process sensor needs Linux"
    if os.geteuid() != 0:
        return "the process sensor needs root (run the suite as root, as CI does)"
    try:
        ProcConnector(64 * 1024).close()
    except OSError as exc:
        return f"the kernel process connector is unavailable here: {exc}"
    return None


@pytest.fixture(scope="module")
def connector() -> None:
    problem = _connector_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture
def server(tmp_path: Path, connector: None) -> Iterator[LiveServer]:
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


class Daemon:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [*AGENT, "run"], env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True
            )

    def stop(self) -> str:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            assert self.process.returncode == 0, self.log_path.read_text()
        self.process = None
        return self.log_path.read_text()


@pytest.fixture
def agent(
    server: LiveServer, tmp_path: Path
) -> Iterator[Callable[[Callable[[configmod.AgentConfig], None]], Daemon]]:
    daemons: list[Daemon] = []

    def make(tweak: Callable[[configmod.AgentConfig], None]) -> Daemon:
        env = agent_env(tmp_path / "agent", UUID)
        done = run_agent(env, "-s", server.url, "-t", "Enrollment", "-k", Admin(server).key())
        assert done.returncode == 0, done.stderr
        path = tmp_path / "agent" / "agent.toml"
        config = configmod.load(path)
        config.daemon.long_poll = 5
        config.sensors.health_interval = 1.0
        # The file sensor marks whole filesystems: with its default paths that would be the
        # host's root filesystem.  Tests that want it watch a tmpfs of their own.
        config.sensors.file = False
        tweak(config)
        configmod.save(path, config)
        daemon = Daemon(env, tmp_path / "agent.log")
        daemons.append(daemon)
        daemon.start()
        return daemon

    yield make
    for daemon in daemons:
        daemon.stop()


def _events(admin: Admin, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = admin.call("GET", "/events", params={"limit": 1000, **params})[
        "items"
    ]
    return items


def _probe(tmp_path: Path) -> tuple[Path, str]:
    """A copy of /bin/sleep under a unique name, with unique bytes after its end (an ELF
    runs the same), and its SHA-256: a plain copy shares its hash with every /bin/sleep
    other work on the host runs, and a search by hash found those too."""
    import hashlib

    exe = tmp_path / f"garrison-probe-{uuid.uuid4().hex[:8]}"
    shutil.copy("/bin/sleep", exe)
    with exe.open("ab") as f:
        f.write(uuid.uuid4().bytes)
    return exe, hashlib.sha256(exe.read_bytes()).hexdigest()


def _running(admin: Admin) -> dict[str, Any]:
    def health() -> list[dict[str, Any]]:
        return [
            e for e in _events(admin, type="sensor_health") if e["data"].get("state_0") == "running"
        ]

    found = wait_for(health, timeout=30, what="a sensor_health event, process running", every=0.3)
    return found[0]


def test_exec_is_reported_with_path_hash_parent_user_and_exit(
    server: LiveServer, agent: Callable[..., Daemon], tmp_path: Path
) -> None:
    admin = Admin(server)
    daemon = agent(lambda config: None)
    _running(admin)
    connected = wait_for(lambda: _events(admin, type="CONNECTED"), timeout=30, what="CONNECTED")
    assert connected[0]["data"]["KERNEL_ACQ_AVAILABLE"] in (1, True)

    exe, sha256 = _probe(tmp_path)
    unique = f"0.{uuid.uuid4().int % 10**12:012d}"  # a valid, unique sleep argument
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(exe), "0.3", unique])
    stat = procinfo.read_stat(parent.pid)
    assert stat is not None
    parent_uid = procinfo.unique_pid(parent.pid, stat.start_ticks)
    parent_path = os.readlink(f"/proc/{parent.pid}/exe")
    assert parent.wait(timeout=10) == 0

    started = wait_for(
        lambda: _events(admin, type="process_started", hash=sha256),
        timeout=5,
        what="process_started by the probe's SHA-256",
        every=0.1,
    )
    assert len(started) == 1
    data = started[0]["data"]
    assert data["file_path"] == str(exe)
    assert data["file_name"] == exe.name
    assert data["sha256"] == sha256
    assert len(data["md5"]) == 32
    assert data["hash_status"] == "ok"
    assert data["command_line"] == f"{exe} 0.3 {unique}"
    assert data["parent_unique_pid"] == parent_uid
    assert data["parent_path"] == parent_path
    assert data["parent_command_line"].startswith(sys.executable)
    assert data["user"] == pwd.getpwuid(os.getuid()).pw_name
    assert data["uid"] == os.getuid()
    assert data["working_directory"] == os.getcwd()
    assert data["unique_pid"].startswith(procinfo.boot_id())
    assert "unavailable" not in data

    stopped = wait_for(
        lambda: _events(admin, type="process_stopped", hash=sha256),
        timeout=5,
        what="process_stopped by the probe's SHA-256",
        every=0.1,
    )
    assert len(stopped) == 1
    assert stopped[0]["data"]["exit_code"] == 0
    assert stopped[0]["data"]["unique_pid"] == data["unique_pid"]
    assert stopped[0]["data"]["end_time"] >= data["start_time"]
    # The path and process searches find it as well.
    assert _events(admin, type="process_started", process=exe.name)
    out = daemon.stop()
    assert "Traceback" not in out


def test_a_restart_mid_stream_duplicates_nothing(
    server: LiveServer, agent: Callable[..., Daemon], tmp_path: Path
) -> None:
    admin = Admin(server)
    daemon = agent(lambda config: None)
    _running(admin)
    exe, sha256 = _probe(tmp_path)
    # A stream of execs that goes on while the agent is stopped and started again.
    stream = subprocess.Popen(
        ["/bin/sh", "-c", f'for i in $(seq 1 60); do "{exe}" 0.0$i; sleep 0.05; done']
    )
    try:
        wait_for(
            lambda: len(_events(admin, type="process_started", hash=sha256)) >= 5,
            timeout=10,
            what="the first execs of the stream",
        )
        daemon.stop()
        daemon.start()
        assert stream.wait(timeout=60) == 0
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.wait()
    _running(admin)
    before = len(_events(admin, type="process_started", hash=sha256))
    exe2_args = f"0.{uuid.uuid4().int % 10**9:09d}"
    assert subprocess.call([str(exe), exe2_args]) == 0  # one more after the restart
    events = wait_for(
        lambda: _events(admin, type="process_started", hash=sha256),
        lambda found: len(found) > before,
        timeout=5,
        what="the exec after the restart",
    )
    # /bin/sleep itself (the shell's pause) has the same SHA-256: keep the probe's execs.
    events = [e for e in events if e["data"].get("file_path") == str(exe)]
    unique_pids = [e["data"]["unique_pid"] for e in events]
    assert len(unique_pids) == len(set(unique_pids)), "a process was reported twice"
    # Under load a process may be gone before /proc could be read: it is reported without
    # its command line (``unavailable`` says so), which is no duplicate.
    command_lines = [e["data"]["command_line"] for e in events if "command_line" in e["data"]]
    assert len(command_lines) == len(set(command_lines))
    assert f"{exe} {exe2_args}" in command_lines


def test_an_induced_overflow_is_counted_in_sensor_health(
    server: LiveServer, agent: Callable[..., Daemon], tmp_path: Path
) -> None:
    admin = Admin(server)

    def tiny(config: configmod.AgentConfig) -> None:
        config.sensors.netlink_rcvbuf = 1  # the kernel's minimum: a few messages

    agent(tiny)
    _running(admin)
    burst = subprocess.run(
        ["/bin/sh", "-c", "for i in $(seq 1 3000); do /bin/true; done"], check=True, timeout=120
    )
    assert burst.returncode == 0

    def overflows() -> int:
        counts = [
            int(e["data"].get("overflows_0", 0)) for e in _events(admin, type="sensor_health")
        ]
        return max(counts, default=0)

    assert wait_for(overflows, timeout=15, what="overflows counted in sensor_health") > 0
