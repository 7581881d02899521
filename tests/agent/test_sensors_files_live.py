"""Real processes: ``garrison serve`` and ``garrison-agent run`` as root, with the file
sensor on a tmpfs the test mounts, and the module sensor on real execs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.agent import config as configmod
from garrison.agent.sensors import procinfo
from tests.agent.helpers import mounted_tmpfs
from tests.agent.test_live import Admin
from tests.agent.test_sensors_live import (  # noqa: F401 (fixtures)
    Daemon,
    _events,
    _probe,
    _running,
    agent,
    connector,
    server,
)
from tests.live import LiveServer
from tests.support import wait_for

pytestmark = pytest.mark.slow
NOBODY = 65534


@pytest.fixture
def tmpfs(connector: None) -> Iterator[Path]:  # noqa: F811
    """A tmpfs of the test's own: the only filesystem the file sensor marks here.  Under a
    directory anyone can traverse (the test writes into it as nobody)."""
    with mounted_tmpfs("garrison-fs-", "size=16m,mode=1777", base_mode=0o755) as mount:
        yield mount


def _sensor_running(admin: Admin, name: str) -> dict[str, Any]:
    def found() -> list[dict[str, Any]]:
        out = []
        for event in _events(admin, type="sensor_health"):
            data = event["data"]
            for i in range(int(data.get("count", 0))):
                if data.get(f"sensor_{i}") == name and data.get(f"state_{i}") == "running":
                    out.append({"reason": data.get(f"reason_{i}", ""), **data})
        return out

    return wait_for(found, timeout=30, what=f"sensor {name} running", every=0.3)[0]


def test_a_file_written_into_a_watched_tmpfs_is_reported(
    server: LiveServer,  # noqa: F811
    agent: Callable[..., Daemon],  # noqa: F811
    tmpfs: Path,
) -> None:
    admin = Admin(server)

    def watch(config: configmod.AgentConfig) -> None:
        config.sensors.file = True
        config.sensors.file_paths = [str(tmpfs), str(tmpfs / "not-there")]

    daemon = agent(watch)
    health = _sensor_running(admin, "file")
    assert "not-there" in health["reason"]  # a missing watched path is named, not fatal

    content = f"dropped-{uuid.uuid4().hex}"
    sha256 = hashlib.sha256(content.encode()).hexdigest()
    target = tmpfs / "sub" / "payload.sh"
    (tmpfs / "sub").mkdir(mode=0o777)
    os.chmod(tmpfs / "sub", 0o777)
    writer = subprocess.Popen(
        ["/bin/sh", "-c", f"set -e; umask 027; printf %s {content} > {target}; sleep 0.5"],
        user=NOBODY,
        group=NOBODY,
    )
    stat = procinfo.read_stat(writer.pid)
    shell = os.readlink(f"/proc/{writer.pid}/exe")
    assert writer.wait(timeout=10) == 0
    assert stat is not None

    found = wait_for(
        lambda: _events(admin, type="file_created", hash=sha256),
        timeout=5,
        what="file_created by the file's SHA-256",
        every=0.1,
    )
    assert len(found) == 1
    data = found[0]["data"]
    assert data["file_path"] == data["full_name"] == str(target)
    assert data["file_name"] == "payload.sh"
    assert data["sha256"] == sha256
    assert data["md5"] == hashlib.md5(content.encode()).hexdigest()
    assert data["size"] == len(content)
    assert data["file_type"] == "file"
    assert data["file_owner"] == procinfo.user_name(NOBODY)
    assert data["owner_uid"] == NOBODY
    assert data["file_permissions"] == "0640"
    assert data["pid"] == writer.pid
    assert data["unique_pid"] == procinfo.unique_pid(writer.pid, stat.start_ticks)
    assert data["process_path"] == shell
    # The directory was reported as well (its creator is this test).
    dirs = [
        e
        for e in _events(admin, type="file_created")
        if e["data"].get("file_path") == str(target.parent)
    ]
    assert [e["data"]["file_type"] for e in dirs] == ["directory"]
    out = daemon.stop()
    assert "Traceback" not in out


def test_libraries_of_an_exec_are_reported_once_not_once_per_exec(
    server: LiveServer,  # noqa: F811
    agent: Callable[..., Daemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    admin = Admin(server)
    daemon = agent(lambda config: None)
    _sensor_running(admin, "module")
    # Unique images (see _probe): a sleep another program runs must not share their hash,
    # or its libraries would be the image's, reported once.
    probes = [_probe(tmp_path) for _ in range(2)]
    (exe, sha256), (other, other_sha) = probes
    for _ in range(3):
        assert subprocess.call([str(exe), "0.4"]) == 0

    def libc(image_sha: str) -> list[dict[str, Any]]:
        return [
            e
            for e in _events(admin, type="module_loaded", hash=image_sha)
            if e["data"]["dll_name"].startswith("libc.")
        ]

    first = wait_for(lambda: libc(sha256), timeout=5, what="module_loaded: libc of the probe")
    data = first[0]["data"]
    assert data["process_file_path"] == str(exe)
    lib_sha = hashlib.sha256(Path(data["dll_path"]).read_bytes()).hexdigest()
    assert data["dll_sha256"] == lib_sha
    assert data["dll_hash_status"] == "ok"
    assert _events(admin, type="module_loaded", hash=lib_sha)  # found by the library's hash
    # Another image: its libc is new.  Once it is at the server, everything the first
    # probe's execs could report is too (one queue, in order; the probe has exited, so
    # the late re-reads find nothing).
    assert subprocess.call([str(other), "0.4"]) == 0
    wait_for(lambda: libc(other_sha), timeout=5, what="module_loaded: libc of the second image")
    assert (
        len(
            wait_for(
                lambda: _events(admin, type="process_started", hash=sha256),
                lambda found: len(found) >= 3,
                timeout=5,
                what="the three execs",
            )
        )
        >= 3
    )
    assert len(libc(sha256)) == 1, "libc reported more than once for one image"
    out = daemon.stop()
    assert "Traceback" not in out
