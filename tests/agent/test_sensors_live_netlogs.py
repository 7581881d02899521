"""Real processes: ``garrison serve`` and ``garrison-agent run`` as root; a listening port
opened by a subprocess, an sshd line logged through a real rsyslog into the auth log the
sensor follows, a login written to the configured utmp file, each found at the server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from garrison.agent import config as configmod
from garrison.agent.sensors import utmp
from tests.agent import test_sensors_live as live
from tests.agent.test_live import Admin
from tests.agent.test_sensors_live import Daemon, _events
from tests.live import LiveServer
from tests.support import wait_for

pytestmark = live.pytestmark
# The fixtures of the process sensor's live tests: root, a real server, a real agent.
connector, server, agent = live.connector, live.server, live.agent

LISTENER = (
    "import socket, sys; s = socket.socket(socket.AF_INET6); s.bind(('::', 0)); s.listen();"
    " print(s.getsockname()[1], flush=True); sys.stdin.read()"
)


def _running(admin: Admin, name: str) -> None:
    """Wait for a sensor_health event saying this sensor runs."""

    def states() -> dict[str, str]:
        out: dict[str, str] = {}
        for event in _events(admin, type="sensor_health"):
            data = event["data"]
            for i in range(int(data.get("count", 0))):
                out.setdefault(data[f"sensor_{i}"], data[f"state_{i}"])
        return out

    wait_for(
        states,
        lambda s: s.get(name) == "running",
        timeout=30,
        what=f"sensor_health with {name} running",
        every=0.3,
    )


def _sources(tmp_path: Path) -> Callable[[configmod.AgentConfig], None]:
    def tweak(config: configmod.AgentConfig) -> None:
        config.sensors.os_log_source = "file"
        config.sensors.os_log_path = str(tmp_path / "auth.log")
        config.sensors.utmp_path = str(tmp_path / "utmp")

    (tmp_path / "auth.log").write_text("")
    (tmp_path / "utmp").write_bytes(b"")
    return tweak


def test_a_listening_port_is_reported_opened_and_closed(
    server: LiveServer, agent: Callable[..., Daemon], tmp_path: Path
) -> None:
    admin = Admin(server)
    daemon = agent(_sources(tmp_path))
    _running(admin, "ports")
    child = subprocess.Popen(
        [sys.executable, "-c", LISTENER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        opened = wait_for(
            lambda: _events(admin, type="port_listening", port=port),
            timeout=5,
            what=f"port_listening with port={port}",
            every=0.1,
        )
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
    assert len(opened) == 1
    data = opened[0]["data"]
    assert data["port"] == port
    assert data["protocol"] == "tcp"
    assert data["ip_version"] == 6
    assert data["adapter_ip"] == "::"
    assert data["pid"] == child.pid
    assert data["process_path"] == os.path.realpath(sys.executable)
    assert data["unique_pid"].split("-")[-2] == str(child.pid)
    closed = wait_for(
        lambda: _events(admin, type="port_closed", port=port),
        timeout=5,
        what=f"port_closed with port={port}",
        every=0.1,
    )
    assert closed[0]["data"]["pid"] == child.pid
    assert "Traceback" not in daemon.stop()


@contextmanager
def syslog_daemon(directory: Path, auth_log: Path) -> Iterator[Path]:
    """A real rsyslogd with its own configuration: a local log socket of its own (the host's
    /dev/log is left alone, other tests may share this machine) and the auth and authpriv
    facilities written to ``auth_log`` in the traditional syslog format, as Debian's
    rsyslog writes /var/log/auth.log.  Yields the socket."""
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not Path(rsyslogd).exists():
        pytest.skip("rsyslogd is not installed (CI installs rsyslog)")
    directory.mkdir(parents=True, exist_ok=True)
    sock = directory / "log.sock"
    conf = directory / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{directory}")\n'
        'module(load="imuxsock" SysSock.Use="off")\n'
        f'input(type="imuxsock" Socket="{sock}")\n'
        f'auth,authpriv.* action(type="omfile" file="{auth_log}" '
        'template="RSYSLOG_TraditionalFileFormat" flushOnTXEnd="on" asyncWriting="off")\n'
    )
    process = subprocess.Popen(
        [rsyslogd, "-n", "-f", str(conf), "-i", str(directory / "rsyslog.pid")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: sock.exists() or process.poll() is not None,
            timeout=20,
            what="rsyslogd's log socket",
        )
        if process.poll() is not None:
            out = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"rsyslogd exited: {out}")
        yield sock
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_an_sshd_line_logged_through_rsyslog_is_an_os_log_event(
    server: LiveServer, agent: Callable[..., Daemon], tmp_path: Path
) -> None:
    """``logger -p authpriv.info -t sshd`` to a real rsyslog, which writes the auth log the
    sensor follows: the line arrives as os_log_event within 5 s."""
    admin = Admin(server)
    auth_log = tmp_path / "auth.log"
    with syslog_daemon(tmp_path / "rsyslog", auth_log) as sock:
        daemon = agent(_sources(tmp_path))
        _running(admin, "os_log")
        user = f"probe{uuid.uuid4().hex[:8]}"
        message = f"Failed password for invalid user {user} from 2001:db8::77 port 41234 ssh2"
        subprocess.run(
            ["logger", "-u", str(sock), "-p", "authpriv.info", "-t", "sshd", "--id=4242", message],
            check=True,
            timeout=10,
        )
        found: list[dict[str, Any]] = wait_for(
            lambda: _events(admin, type="os_log_event", user=user),
            timeout=5,
            what=f"os_log_event with user={user}",
            every=0.1,
        )
        # rsyslog wrote it, in its own format: the sensor read rsyslog's line, not ours.
        assert f"sshd[4242]: {message}" in auth_log.read_text()
    assert len(found) == 1
    data = found[0]["data"]
    assert data["user"] == user
    assert data["remote_ip"] == "2001:db8::77"
    assert data["auth_subtype"] == "ssh_login_failed"
    assert data["result"] == "failure"
    assert data["invalid_user"] is True
    assert "Traceback" not in daemon.stop()


def test_a_utmp_login_and_logout_are_terminal_session_events(
    server: LiveServer, agent: Callable[..., Daemon], tmp_path: Path
) -> None:
    admin = Admin(server)
    daemon = agent(_sources(tmp_path))
    _running(admin, "terminal")
    user = f"probe{uuid.uuid4().hex[:8]}"
    login = utmp.UtmpRecord(
        utmp.USER_PROCESS, 4321, "pts/7", "ts/7", user, "203.0.113.5", 4321, 1.7e9, "203.0.113.5"
    )
    path = tmp_path / "utmp"
    path.write_bytes(utmp.pack_record(login))
    started = wait_for(
        lambda: _events(admin, type="terminal_session_started", user=user),
        timeout=5,
        what="terminal_session_started",
        every=0.1,
    )
    assert started[0]["data"]["tty"] == "pts/7"
    assert started[0]["data"]["remote_ip"] == "203.0.113.5"
    assert started[0]["data"]["pid"] == 4321
    logout = utmp.UtmpRecord(utmp.DEAD_PROCESS, 4321, "pts/7", "ts/7", "", "", 0, 1.7e9 + 60, None)
    path.write_bytes(utmp.pack_record(logout))
    ended = wait_for(
        lambda: _events(admin, type="terminal_session_ended", user=user),
        timeout=5,
        what="terminal_session_ended",
        every=0.1,
    )
    assert ended[0]["data"]["end_time"].startswith("2023-11-14T22:14:20")
    assert "Traceback" not in daemon.stop()
