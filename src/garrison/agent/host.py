"""Facts about the host the agent reports: name, MAC address, platform."""

from __future__ import annotations

import platform
import socket
from pathlib import Path

NET = Path("/sys/class/net")


def hostname() -> str:
    return socket.gethostname()


def mac_address() -> str:
    """The first non-loopback interface's MAC, ``42-01-0A-80-00-02`` style; "" when none."""
    try:
        names = sorted(p.name for p in NET.iterdir())
    except OSError:
        return ""
    for name in names:
        if name == "lo":
            continue
        try:
            mac = (NET / name / "address").read_text().strip()
        except OSError:
            continue
        if mac and mac != "00:00:00:00:00:00" and len(mac) == 17:
            return mac.replace(":", "-").upper()
    return ""


def os_info() -> dict[str, str]:
    return {"name": platform.system().lower() or "linux", "libpath": platform.system() or "Linux"}


def platform_name() -> str:
    return platform.platform(terse=True)
