"""Device control (issue 16 item 4): kernel uevents, the rules, the sysfs write.

No USB device can be plugged in CI: the uevent parsing is tested on real kernel messages
(a synthetic ``change`` uevent on /dev/null's sysfs node, received on a real
NETLINK_KOBJECT_UEVENT socket), and the decision and the ``authorized`` write against a
tree built to the kernel's sysfs layout (tests/agent/sysfs_tree.py).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.context import Agent
from garrison.agent.prevention import devices, uevent
from garrison.agent.state import StateDir
from garrison.common.devices import RuleError, parse_rule
from tests.agent.sysfs_tree import authorized, make_root_hub, plug

NULL_UEVENT = Path("/sys/devices/virtual/mem/null/uevent")


def _agent(tmp_path: Path) -> Agent:
    return Agent(StateDir(tmp_path / "state", explicit=True))


def _sent(agent: Agent, kind: str) -> list[dict[str, Any]]:
    return [
        m.body["data"]
        for m in agent.spool.pending()
        if m.path == "events" and m.body.get("type") == kind
    ]


# -- uevent messages ------------------------------------------------------------------------


def test_a_kernel_message_is_parsed() -> None:
    raw = (
        b"add@/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0\x00ACTION=add\x00"
        b"DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0\x00SUBSYSTEM=usb\x00"
        b"DEVTYPE=usb_interface\x00PRODUCT=781/5567/100\x00INTERFACE=8/6/80\x00SEQNUM=4242\x00"
    )
    event = uevent.parse(raw)
    assert event is not None
    assert (event.action, event.subsystem, event.devtype) == ("add", "usb", "usb_interface")
    assert event.env["INTERFACE"] == "8/6/80"
    assert event.devpath.endswith("1-1:1.0")


def test_what_is_not_a_kernel_message_is_passed_over() -> None:
    assert uevent.parse(b"libudev\x00\xfe\xed\xca\xfe rest") is None
    assert uevent.parse(b"no header here\x00ACTION=add\x00") is None
    # A header the pairs contradict is not the kernel's.
    assert uevent.parse(b"add@/devices/x\x00ACTION=remove\x00DEVPATH=/devices/x\x00") is None


@pytest.mark.skipif(
    os.geteuid() != 0 or not NULL_UEVENT.exists(), reason="writing a uevent file needs root"
)
def test_a_real_uevent_arrives_on_the_netlink_socket() -> None:
    sock = uevent.UeventSocket(timeout=0.5)
    try:
        mark = str(uuid.uuid4())
        # A synthetic "change" on /dev/null's node: harmless, and tagged with our uuid.
        NULL_UEVENT.write_text(f"change {mark} GARRISON=test")
        deadline = time.monotonic() + 10
        found = None
        while found is None and time.monotonic() < deadline:
            event = sock.receive()
            if event is not None and event.env.get("SYNTH_UUID") == mark:
                found = event
        assert found is not None, "the kernel's uevent did not arrive"
        assert (found.action, found.devpath, found.subsystem) == (
            "change", "/devices/virtual/mem/null", "mem",
        )  # fmt: skip
        assert found.env["SYNTH_ARG_GARRISON"] == "test"
    finally:
        sock.close()


# -- rules ----------------------------------------------------------------------------------


def test_rules_parse_and_bad_ones_name_their_line() -> None:
    rules = devices.parse_rules(
        "# allow-list\nallow usb-storage 0781:5567 4C530001\n\nblock usb-storage *:*\n"
    )
    assert [r.line() for r in rules] == [
        "allow usb-storage 0781:5567 4C530001",
        "block usb-storage *:*",
    ]
    with pytest.raises(RuleError, match="line 2: device class 'floppy'"):
        devices.parse_rules("block usb *:*\nblock floppy *:*\n")
    with pytest.raises(RuleError, match="4 hex digits"):
        parse_rule("block usb 781:5567")


def test_the_first_matching_rule_decides_and_classes_come_from_interfaces(
    tmp_path: Path,
) -> None:
    sysfs = tmp_path / "sys"
    stick = devices.read_device(plug(sysfs, "1", "0781", "5567", (0x08,), "4C530001"))
    other = devices.read_device(plug(sysfs, "2", "0781", "5567", (0x08,), "OTHER"))
    mouse = devices.read_device(plug(sysfs, "3", "046d", "c077", (0x03,)))
    assert stick is not None
    assert other is not None
    assert mouse is not None
    assert stick.classes == (0x08,)
    rules = devices.parse_rules("allow usb-storage 0781:5567 4C530001\nblock usb-storage *:*\n")
    assert devices.decide(rules, stick) == rules[0]
    assert devices.decide(rules, other) == rules[1]
    assert devices.decide(rules, mouse) is None  # no rule names a mouse: allowed
    assert devices.decide(devices.parse_rules("block usb 046d:*\n"), mouse) is not None


# -- the control on a sysfs tree ------------------------------------------------------------


def test_a_blocked_device_is_deauthorised_and_reported(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    hub = make_root_hub(sysfs)
    allowed = plug(sysfs, "1", "0781", "5567", (0x08,), "4C530001", "SanDisk", "Cruzer Blade")
    blocked = plug(sysfs, "2", "0781", "5567", (0x08,), "BADBADBAD", "SanDisk", "Cruzer Blade")
    keyboard = plug(sysfs, "3", "046d", "c31c", (0x03, 0x03))
    agent = _agent(tmp_path)
    control = devices.DeviceControl(agent, sysfs)
    control.policy = devices.parse_rules(
        "allow usb-storage 0781:5567 4C530001\nblock usb-storage *:*\n"
    )
    control.look_at_all()
    assert authorized(blocked) == "0"
    assert authorized(allowed) == "1"
    assert authorized(keyboard) == "1"
    assert authorized(hub) == "1"  # a root hub is the controller: never touched
    [report] = _sent(agent, "device_blocked")
    assert report["instance_id"] == "USB\\VID_0781&PID_5567\\BADBADBAD"
    assert report["friendly_name"] == "SanDisk Cruzer Blade"
    assert report["description"] == "USB mass storage"
    assert report["guid"] == "{4d36e967-e325-11ce-bfc1-08002be10318}"
    assert report["class"] == "DiskDrive"
    assert abs(report["blocktime"] - time.time()) < 60
    # Looked at again (another uevent): already blocked, not reported twice.
    control.look_at_all()
    assert len(_sent(agent, "device_blocked")) == 1
    # The rule lifted: the device this agent blocked is let in again.
    control.policy = []
    control.look_at_all()
    assert authorized(blocked) == "1"
    assert control.counters.reauthorized == 1
    agent.close()


def test_an_interface_uevent_decides_for_its_device(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    stick = plug(sysfs, "4", "abcd", "1234", (0x08,))
    agent = _agent(tmp_path)
    control = devices.DeviceControl(agent, sysfs)
    control.policy = devices.parse_rules("block usb-storage *:*\n")
    devpath = "/" + str((stick / "1-4:1.0").relative_to(sysfs))
    event = uevent.parse(
        f"add@{devpath}\x00ACTION=add\x00DEVPATH={devpath}\x00SUBSYSTEM=usb\x00"
        "DEVTYPE=usb_interface\x00INTERFACE=8/6/80\x00".encode()
    )
    assert event is not None
    assert devices.device_dir(sysfs, event) == stick
    control.on_uevent(event)
    assert authorized(stick) == "0"
    # A remove, or another subsystem, is not a decision.
    gone = uevent.parse(f"remove@{devpath}\x00SUBSYSTEM=usb\x00".encode())
    assert gone is not None
    assert devices.device_dir(sysfs, gone) is None
    agent.close()


def test_a_write_that_fails_is_counted_and_the_device_stays(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    stick = plug(sysfs, "5", "abcd", "1234", (0x08,))
    (stick / "authorized").unlink()
    (stick / "authorized").mkdir()  # not writable as a file: the write fails
    agent = _agent(tmp_path)
    control = devices.DeviceControl(agent, sysfs)
    control.policy = devices.parse_rules("block usb *:*\n")
    assert control.look_at(stick) == "allowed"
    assert control.counters.errors == 1
    assert _sent(agent, "device_blocked") == []
    agent.close()
