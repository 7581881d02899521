"""A sysfs tree built to the kernel's layout for USB devices, in a temporary directory:
``devices/pci0000:00/0000:00:14.0/usb1/1-1`` with its attributes and interfaces, and the
``bus/usb/devices/1-1`` symlink to it.  No USB device can be plugged in CI; device control's
decision and its ``authorized`` write are exercised against this tree."""

from __future__ import annotations

import os
from pathlib import Path

CONTROLLER = "devices/pci0000:00/0000:00:14.0"


def make_root_hub(sysfs: Path) -> Path:
    hub = sysfs / CONTROLLER / "usb1"
    hub.mkdir(parents=True, exist_ok=True)
    for name, value in (("idVendor", "1d6b"), ("idProduct", "0002"), ("bDeviceClass", "09"),
                        ("authorized", "1"), ("authorized_default", "1")):  # fmt: skip
        (hub / name).write_text(value + "\n")
    _link(sysfs, hub)
    return hub


def _link(sysfs: Path, device: Path) -> None:
    bus = sysfs / "bus" / "usb" / "devices"
    bus.mkdir(parents=True, exist_ok=True)
    link = bus / device.name
    if not link.is_symlink():
        link.symlink_to(os.path.relpath(device, bus))


def plug(
    sysfs: Path,
    port: str,
    vendor: str,
    product: str,
    interface_classes: tuple[int, ...],
    serial: str | None = None,
    manufacturer: str = "",
    product_name: str = "",
    device_class: int = 0,
) -> Path:
    """A device on root hub 1 at ``1-<port>``, as the kernel lays it out once configured."""
    make_root_hub(sysfs)
    device = sysfs / CONTROLLER / "usb1" / f"1-{port}"
    device.mkdir(parents=True)
    attrs = {
        "idVendor": vendor,
        "idProduct": product,
        "bDeviceClass": f"{device_class:02x}",
        "authorized": "1",
        "busnum": "1",
        "devnum": str(len(list((sysfs / "bus" / "usb" / "devices").iterdir())) + 1),
    }
    if serial:
        attrs["serial"] = serial
    if manufacturer:
        attrs["manufacturer"] = manufacturer
    if product_name:
        attrs["product"] = product_name
    for name, value in attrs.items():
        (device / name).write_text(value + "\n")
    for number, code in enumerate(interface_classes):
        interface = device / f"1-{port}:1.{number}"
        interface.mkdir()
        (interface / "bInterfaceClass").write_text(f"{code:02x}\n")
        (interface / "bInterfaceNumber").write_text(f"{number:02x}\n")
    _link(sysfs, device)
    return device


def authorized(device: Path) -> str:
    return (device / "authorized").read_text().strip()
