"""Device control: USB devices let in or blocked by the server's device rules.

The rules are the signed content's ``devices`` rule sets (the fleet's ``device-rules``,
``/admin/v1/device-rules``, and any a group is assigned), read from the content in force;
the first matching line decides, and a device no rule names is allowed.  A blocked device
is deauthorised: ``0`` written to its sysfs ``authorized`` attribute (the kernel unbinds
its drivers and removes its interfaces), and ``device_blocked`` is reported.

When it looks at a device: at start and whenever the rules change (every device present),
and on each kernel uevent ``add``/``bind`` of a USB device or interface (an interface add
is when the device's interface classes are known: a mass-storage stick shows class 08 only
on its interface).  A device this agent blocked that the rules now allow is authorised
again.  Root hubs (``usbN``) are never touched: they are the controllers themselves.

The sysfs root is settable (``[devices] sysfs_root``) so the decision and the write can be
exercised against a tree built to the kernel's layout (docs/agent.md "Device control").
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.agent.content.store import ContentStore
from garrison.agent.context import Agent
from garrison.agent.errors import AgentError
from garrison.agent.prevention.uevent import Uevent, UeventSocket
from garrison.common import devices as rules

log = logging.getLogger("garrison.agent.devices")

DEVICE_NAME = re.compile(r"^\d+-\d+(\.\d+)*$")
INTERFACE_NAME = re.compile(r"^\d+-\d+(\.\d+)*:\d+\.\d+$")
CONTROL_SECONDS = 0.5
KIND = "devices"


@dataclass(frozen=True)
class UsbDevice:
    """What sysfs says of one USB device (``/sys/bus/usb/devices/1-1``)."""

    path: Path
    name: str
    vendor: str
    product: str
    serial: str | None
    manufacturer: str
    product_name: str
    classes: tuple[int, ...]  # bDeviceClass (when not 0) then each interface's class
    authorized: bool

    @property
    def instance_id(self) -> str:
        """As Windows names a device instance (what Dr.Web reports)."""
        tail = self.serial or self.name
        return f"USB\\VID_{self.vendor.upper()}&PID_{self.product.upper()}\\{tail}"

    @property
    def friendly_name(self) -> str:
        name = " ".join(p for p in (self.manufacturer, self.product_name) if p)
        return name or f"USB device {self.vendor}:{self.product}"


def _attr(directory: Path, name: str) -> str | None:
    try:
        return (directory / name).read_text(errors="replace").strip()
    except OSError:
        return None


def _hex(text: str | None) -> int | None:
    try:
        return int(text, 16) if text else None
    except ValueError:
        return None


def read_device(directory: Path) -> UsbDevice | None:
    """A USB device directory, or None when it is not one (a root hub, an interface) or
    vanished while read."""
    if not DEVICE_NAME.match(directory.name):
        return None
    vendor, product = _attr(directory, "idVendor"), _attr(directory, "idProduct")
    if not vendor or not product:
        return None
    classes: list[int] = []
    own = _hex(_attr(directory, "bDeviceClass"))
    if own:  # 0: defined per interface
        classes.append(own)
    try:
        children = sorted(p for p in directory.iterdir() if INTERFACE_NAME.match(p.name))
    except OSError:
        children = []
    for child in children:
        code = _hex(_attr(child, "bInterfaceClass"))
        if code is not None and code not in classes:
            classes.append(code)
    return UsbDevice(
        directory,
        directory.name,
        vendor.lower(),
        product.lower(),
        _attr(directory, "serial") or None,
        _attr(directory, "manufacturer") or "",
        _attr(directory, "product") or "",
        tuple(classes),
        _attr(directory, "authorized") != "0",
    )


def present(sysfs: Path) -> list[Path]:
    """Every USB device directory (resolved) under ``sysfs/bus/usb/devices``."""
    try:
        entries = sorted((sysfs / "bus" / "usb" / "devices").iterdir())
    except OSError:
        return []
    return [p.resolve() for p in entries if DEVICE_NAME.match(p.name)]


def device_dir(sysfs: Path, event: Uevent) -> Path | None:
    """The USB device an ``add``/``bind`` uevent is about (an interface's: its parent)."""
    if event.subsystem != "usb" or event.action not in ("add", "bind"):
        return None
    path = sysfs / event.devpath.lstrip("/")
    if event.devtype == "usb_interface" or INTERFACE_NAME.match(path.name):
        path = path.parent
    return path if DEVICE_NAME.match(path.name) else None


# -- the decision ---------------------------------------------------------------------------


def matches(rule: rules.DeviceRule, device: UsbDevice) -> bool:
    kind = rules.CLASSES[rule.device_class]
    if kind.code is not None and kind.code not in device.classes:
        return False
    if rule.vendor != "*" and rule.vendor != device.vendor:
        return False
    if rule.product != "*" and rule.product != device.product:
        return False
    return rule.serial is None or rule.serial == device.serial


def decide(policy: list[rules.DeviceRule], device: UsbDevice) -> rules.DeviceRule | None:
    """The first rule naming the device (None: no rule does; it is allowed)."""
    return next((r for r in policy if matches(r, device)), None)


def parse_rules(text: str) -> list[rules.DeviceRule]:
    out: list[rules.DeviceRule] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            out.append(rules.parse_rule(line))
        except rules.RuleError as exc:
            raise rules.RuleError(f"line {number}: {exc}") from None
    return out


def set_authorized(device: UsbDevice, allowed: bool) -> None:
    """The kernel's switch: ``0`` unbinds the drivers and removes the interfaces."""
    with open(device.path / "authorized", "w") as handle:
        handle.write("1" if allowed else "0")


# -- the runner -----------------------------------------------------------------------------


@dataclass
class Counters:
    seen: int = 0
    blocked: int = 0
    reauthorized: int = 0
    errors: int = 0
    overflows: int = 0


class DeviceControl:
    """The uevent listener and the rules in force (one thread)."""

    def __init__(
        self,
        agent: Agent,
        sysfs: Path,
        on_queued: Callable[[], None] = lambda: None,
        make_socket: Callable[[], UeventSocket] = UeventSocket,
    ) -> None:
        self.agent = agent
        self.sysfs = sysfs
        self.on_queued = on_queued
        self.make_socket = make_socket
        self.policy: list[rules.DeviceRule] = []
        self.policy_source = ""  # the content manifest the rules came from
        self.policy_error = ""
        self.state = "stopped"
        self.reason = ""
        self.counters = Counters()
        self.blocked: dict[Path, str] = {}  # device dir -> instance id, blocked by this agent
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket: UeventSocket | None = None
        self.started_at = 0.0
        self._source_dir = ""  # the content directory the rules were read from

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.started_at = time.time()
        try:
            self._socket = self.make_socket()
            self.state, self.reason = "running", ""
        except OSError as exc:
            # Without uevents the rules still apply to what is present, at each change.
            self.state, self.reason = "degraded", f"no kernel uevents: {exc.strerror or exc}"
            log.warning("device control: %s", self.reason)
        self.refresh(force=True)
        self._thread = threading.Thread(target=self._run, name="devices", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self.state = "stopped"

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                sock = self._socket
                if sock is None:
                    self._stop.wait(CONTROL_SECONDS)
                else:
                    overflows = sock.overflows
                    event = sock.receive()
                    if sock.overflows != overflows:
                        self.counters.overflows = sock.overflows
                        self.look_at_all()  # messages were lost: look at every device
                    elif event is not None:
                        self.on_uevent(event)
                if time.monotonic() - last >= CONTROL_SECONDS:
                    last = time.monotonic()
                    self.refresh()
            except Exception:
                self.counters.errors += 1
                log.exception("device control crashed; going on")
                self._stop.wait(CONTROL_SECONDS)

    # -- rules -------------------------------------------------------------------------------

    def load_rules(self) -> tuple[str, list[rules.DeviceRule]]:
        """The ``devices`` rule sets of the content in force, in the manifest's order."""
        found = ContentStore(self.agent.state).installed()
        if found is None:
            return "", []
        policy: list[rules.DeviceRule] = []
        for entry in found.manifest.files:
            if entry.kind == KIND:
                text = (found.directory / entry.name).read_text(encoding="utf-8")
                policy.extend(parse_rules(text))
        return found.manifest.sha256, policy

    def refresh(self, force: bool = False) -> bool:
        """Take the rules of the content in force if it changed; then look at every device.
        Rules that do not load leave the previous ones in force (and say why)."""
        found = ContentStore(self.agent.state).live_dir()
        source_hint = str(found) if found else ""
        if not force and source_hint == self._source_dir:
            return False
        self._source_dir = source_hint
        try:
            source, policy = self.load_rules()
        except (OSError, rules.RuleError) as exc:
            self.policy_error = f"device rules refused, the previous stay: {exc}"
            log.error("device control: %s", self.policy_error)
            return False
        with self._lock:
            self.policy, self.policy_source, self.policy_error = policy, source, ""
        if policy or self.blocked:
            log.info("device control: %d rule(s) in force", len(policy))
        self.look_at_all()
        return True

    # -- devices -----------------------------------------------------------------------------

    def look_at_all(self) -> None:
        for directory in present(self.sysfs):
            self.look_at(directory)

    def on_uevent(self, event: Uevent) -> None:
        directory = device_dir(self.sysfs, event)
        if directory is not None:
            self.look_at(directory)

    def look_at(self, directory: Path) -> str:
        """Decide for one device: ``blocked``, ``allowed``, ``reauthorized`` or ``gone``."""
        device = read_device(directory)
        if device is None:
            return "gone"
        self.counters.seen += 1
        with self._lock:
            rule = decide(self.policy, device)
        if rule is not None and rule.action == "block":
            if not device.authorized:
                return "blocked"  # already (by this agent, or by hand)
            try:
                set_authorized(device, False)
            except OSError as exc:
                self.counters.errors += 1
                log.error("device control: cannot block %s: %s", device.instance_id, exc)
                return "allowed"
            self.blocked[device.path] = device.instance_id
            self.counters.blocked += 1
            self._report(device, rule)
            return "blocked"
        if not device.authorized and device.path in self.blocked:
            try:
                set_authorized(device, True)
            except OSError as exc:
                self.counters.errors += 1
                log.error("device control: cannot let %s in: %s", device.instance_id, exc)
                return "blocked"
            self.blocked.pop(device.path, None)
            self.counters.reauthorized += 1
            log.info("device control: %s allowed again", device.instance_id)
            return "reauthorized"
        return "allowed"

    def _report(self, device: UsbDevice, rule: rules.DeviceRule) -> None:
        kind = rules.CLASSES[rule.device_class]
        if kind.code is None:  # "usb": name the device by its own first class
            kind = next((c for c in rules.CLASSES.values() if c.code in device.classes), kind)
        now = time.time()
        data: dict[str, Any] = {
            "instance_id": device.instance_id,
            "friendly_name": device.friendly_name,
            "description": kind.description,
            "guid": kind.guid,
            "class": kind.windows_class,
            "blocktime": now,
            "station_time": now,
        }
        log.warning(
            "device control: blocked %s (%s) by rule %r",
            device.instance_id,
            device.friendly_name,
            rule.line(),
        )
        try:
            self.agent.event("device_blocked", data)
        except AgentError as exc:
            log.warning("device_blocked: %s", exc.message)
        self.on_queued()
