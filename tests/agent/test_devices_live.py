"""Real processes (issue 16 items 4 and 6): ``garrison serve`` and ``garrison-agent run``.

Device rules added through ``/admin/v1/device-rules`` reach the agent through the signed
content and are applied to the USB devices of a sysfs tree built to the kernel's layout
(``[devices] sysfs_root``; no USB device can be plugged in CI): the one not on the
allow-list is deauthorised and ``device_blocked`` reaches the server with the Dr.Web
fields; lifting the rule lets it in again.  The agent's components report
``component_started`` / ``component_completed`` and its policy ``station_status``; a scan
error from the real engine is ``station_scan_error`` at the server.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.agent import config as configmod
from tests.agent.helpers import agent_env, run_agent
from tests.agent.sysfs_tree import authorized, plug
from tests.agent.test_live import UUID, Admin
from tests.agent.test_sensors_live import Daemon, _events
from tests.live import LiveServer, start_server
from tests.support import wait_for

pytestmark = pytest.mark.slow
LONG_POLL = 2
ONE_CHECK_IN = LONG_POLL + 20


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


def _daemon(server: LiveServer, tmp_path: Path, sysfs: Path) -> Daemon:
    env = agent_env(tmp_path / "agent", UUID)
    done = run_agent(env, "-s", server.url, "-t", "Enrollment", "-k", Admin(server).key())
    assert done.returncode == 0, done.stderr
    path = tmp_path / "agent" / "agent.toml"
    config = configmod.load(path)
    config.daemon.long_poll = LONG_POLL
    config.sensors.enabled = False
    config.devices.sysfs_root = str(sysfs)
    configmod.save(path, config)
    daemon = Daemon(env, tmp_path / "agent.log")
    daemon.start()
    return daemon


def _data(admin: Admin, kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in _events(admin, type=kind)]


def test_device_rules_block_a_usb_stick_and_report_it(server: LiveServer, tmp_path: Path) -> None:
    admin = Admin(server)
    sysfs = tmp_path / "sys"
    good = plug(sysfs, "1", "0781", "5567", (0x08,), "4C530001", "SanDisk", "Cruzer Blade")
    bad = plug(sysfs, "2", "0781", "5567", (0x08,), "DEADBEEF01", "SanDisk", "Cruzer Blade")
    mouse = plug(sysfs, "3", "046d", "c077", (0x03,), None, "Logitech", "Mouse")
    daemon = _daemon(server, tmp_path, sysfs)
    try:
        wait_for(
            lambda: [d for d in _data(admin, "component_started") if d.get("component") == 4],
            timeout=30, what="device control's component_started", every=0.3,
        )  # fmt: skip
        allow = admin.call(
            "POST", "/device-rules",
            json={"action": "allow", "device_class": "usb-storage", "vendor": "0781",
                  "product": "5567", "serial": "4C530001", "comment": "the office stick"},
        )  # fmt: skip
        block = admin.call(
            "POST", "/device-rules", json={"action": "block", "device_class": "usb-storage"}
        )
        assert block["rule"] == "block usb-storage *:*"
        listed = admin.call("GET", "/device-rules")
        assert [r["id"] for r in listed["rules"]] == [allow["id"], block["id"]]
        wait_for(lambda: authorized(bad), lambda v: v == "0", timeout=ONE_CHECK_IN,
                 what="the stick off the allow-list deauthorised", every=0.2)  # fmt: skip
        assert authorized(good) == "1"
        assert authorized(mouse) == "1"
        [report] = wait_for(
            lambda: _events(admin, type="device_blocked"), timeout=30,
            what="device_blocked at the server", every=0.3,
        )  # fmt: skip
        data = report["data"]
        assert data["instance_id"] == "USB\\VID_0781&PID_5567\\DEADBEEF01"
        assert data["friendly_name"] == "SanDisk Cruzer Blade"
        assert data["class"] == "DiskDrive"
        assert data["guid"] == "{4d36e967-e325-11ce-bfc1-08002be10318}"
        assert data["description"] == "USB mass storage"
        assert data["id"] == admin.station_id()
        assert data["blocktime"]
        assert data["blockrcvtime"]
        # The block lifted: the device this agent blocked is let in again.
        admin.call("DELETE", f"/device-rules/{block['id']}")
        wait_for(lambda: authorized(bad), lambda v: v == "1", timeout=ONE_CHECK_IN,
                 what="the stick authorised again", every=0.2)  # fmt: skip
        [status] = _data(admin, "station_status")
        assert status == {**status, "events": False, "jobs": True, "updates": True}
        [start] = _data(admin, "STARTING_UP")
        assert start["UNCLEAN_STOP"] is False
    finally:
        daemon.stop()
    completed = wait_for(
        lambda: {d["component"]: d for d in _data(admin, "component_completed")},
        lambda found: {2, 4} <= set(found), timeout=30,
        what="component_completed of on-access and device control", every=0.3,
    )  # fmt: skip
    assert completed[4]["exitcode"] == 0
    started = {d["component"]: d for d in _data(admin, "component_started")}
    assert started[4]["pid"] == completed[4]["pid"]
    assert started[4]["engine"].startswith("garrison ")
    assert started[4]["records"] > 0


def test_scan_errors_and_the_scanner_component_reach_the_server(
    server: LiveServer, tmp_path: Path
) -> None:
    admin = Admin(server)
    env = agent_env(tmp_path / "agent", UUID)
    done = run_agent(env, "-s", server.url, "-t", "Enrollment", "-k", Admin(server).key())
    assert done.returncode == 0, done.stderr
    target = tmp_path / "scanme"
    target.mkdir()
    # An archive whose member is over the member limit: a contained zip bomb.
    bomb = target / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", b"\0" * (8 * 1024 * 1024))
    path = tmp_path / "agent" / "agent.toml"
    config = configmod.load(path)
    config.scan.archive_max_size = 1024 * 1024
    configmod.save(path, config)
    unreadable = target / "secret"
    unreadable.write_text("x")
    unreadable.chmod(0)  # root reads it anyway: then the archive limit is the only error
    done = run_agent(env, "-t", "Scan", "--path", str(target))
    assert "Traceback" not in done.stderr, done.stderr
    errors = wait_for(
        lambda: _data(admin, "station_scan_error"), timeout=30,
        what="station_scan_error at the server", every=0.3,
    )  # fmt: skip
    archive_errors = [e for e in errors if e.get("error_kind") == "archive"]
    assert archive_errors
    assert archive_errors[0]["object"] == str(bomb)
    assert "archive member limit" in archive_errors[0]["error"]
    assert archive_errors[0]["action"] == "error:archive"
    if os.geteuid() != 0:
        assert any(e.get("error_kind") == "unreadable" for e in errors)
    [started] = _data(admin, "component_started")
    [completed] = _data(admin, "component_completed")
    assert started["component"] == completed["component"] == 1
    assert completed["errors"] >= 1
    assert completed["exitcode"] == 2
    assert completed["infections"] == 0
