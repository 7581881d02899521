"""Device classes of the device rules (``devices`` content, docs/content.md), shared by the
server's check of a rule set and the agent's device control.

A rule names a class: ``usb`` (any USB device) or a USB class by name; a device is in a
class when its own class code (``bDeviceClass``) or the class of one of its interfaces
(``bInterfaceClass``) is the class's code.  ``guid`` and ``windows_class`` are the Windows
device setup class a Dr.Web ``device_blocked`` procedure expects in ``guid`` and ``class``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACTIONS = ("allow", "block")
ID4 = re.compile(r"^([0-9a-fA-F]{4}|\*)$")
SERIAL = re.compile(r"^[\x21-\x7e]{1,128}$")


@dataclass(frozen=True)
class DeviceClass:
    name: str
    code: int | None  # USB class code; None: any USB device
    description: str
    windows_class: str
    guid: str


CLASSES: dict[str, DeviceClass] = {
    c.name: c
    for c in (
        DeviceClass("usb", None, "USB device", "USB", "{36fc9e60-c465-11cf-8056-444553540000}"),
        DeviceClass(
            "usb-audio", 0x01, "USB audio", "MEDIA", "{4d36e96c-e325-11ce-bfc1-08002be10318}"
        ),
        DeviceClass(
            "usb-comm", 0x02, "USB communications", "Net", "{4d36e972-e325-11ce-bfc1-08002be10318}"
        ),
        DeviceClass(
            "usb-hid",
            0x03,
            "USB human interface",
            "HIDClass",
            "{745a17a0-74d3-11d0-b6fe-00a0c90f57da}",
        ),
        DeviceClass(
            "usb-image",
            0x06,
            "USB still image (camera, phone)",
            "Image",
            "{6bdd1fc6-810f-11d0-bec7-08002be2092f}",
        ),
        DeviceClass(
            "usb-printer",
            0x07,
            "USB printer",
            "Printer",
            "{4d36e979-e325-11ce-bfc1-08002be10318}",
        ),
        DeviceClass(
            "usb-storage",
            0x08,
            "USB mass storage",
            "DiskDrive",
            "{4d36e967-e325-11ce-bfc1-08002be10318}",
        ),
        DeviceClass("usb-hub", 0x09, "USB hub", "USB", "{36fc9e60-c465-11cf-8056-444553540000}"),
        DeviceClass(
            "usb-smartcard",
            0x0B,
            "USB smart card reader",
            "SmartCardReader",
            "{50dd5230-ba8a-11d1-bf5d-0000f805f530}",
        ),
        DeviceClass(
            "usb-video", 0x0E, "USB video", "Camera", "{ca3e7ab9-b4c3-4ae6-8251-579ef933890f}"
        ),
        DeviceClass(
            "usb-wireless",
            0xE0,
            "USB wireless (Bluetooth)",
            "Bluetooth",
            "{e0cbf06c-cd8b-4647-bb8a-263b43f0f974}",
        ),
    )
}


@dataclass(frozen=True)
class DeviceRule:
    """One line: ``allow|block CLASS VENDOR:PRODUCT [SERIAL]``; ``*`` matches any id."""

    action: str
    device_class: str
    vendor: str
    product: str
    serial: str | None = None

    def line(self) -> str:
        text = f"{self.action} {self.device_class} {self.vendor}:{self.product}"
        return f"{text} {self.serial}" if self.serial else text


class RuleError(ValueError):
    pass


def parse_rule(text: str) -> DeviceRule:
    """One rule line (not a comment); RuleError says what is wrong."""
    words = text.split()
    if len(words) not in (3, 4):
        raise RuleError("expected allow|block CLASS VENDOR:PRODUCT [SERIAL]")
    action, name, ids = words[0], words[1], words[2]
    if action not in ACTIONS:
        raise RuleError(f"action {action[:20]!r} must be allow or block")
    if name not in CLASSES:
        raise RuleError(f"device class {name[:20]!r} is not one of {', '.join(CLASSES)}")
    vendor, sep, product = ids.partition(":")
    if not sep or not ID4.match(vendor) or not ID4.match(product):
        raise RuleError("VENDOR:PRODUCT must be 4 hex digits or * each")
    serial = words[3] if len(words) == 4 else None
    if serial is not None and not SERIAL.match(serial):
        raise RuleError("the serial must be printable ASCII")
    return DeviceRule(action, name, vendor.lower(), product.lower(), serial)
