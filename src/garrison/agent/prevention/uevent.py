"""Kernel uevents: the ``NETLINK_KOBJECT_UEVENT`` socket and its messages.

The kernel multicasts one message per device event on group 1: ``ACTION@DEVPATH`` then
``KEY=VALUE`` pairs, each NUL-terminated (``ACTION``, ``DEVPATH``, ``SUBSYSTEM``,
``DEVTYPE``, ``PRODUCT``, ``INTERFACE``, ``SEQNUM``…).  udev re-sends them on group 2 with
a ``libudev`` header; the agent listens to the kernel's own (no udev needed) and takes a
message only from the kernel (sender port 0): any process may not speak for it.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

NETLINK_KOBJECT_UEVENT = 15
KERNEL_GROUP = 1
RECEIVE_BUFFER = 4 * 1024 * 1024  # a hub of devices plugged at once is a burst
MAX_MESSAGE = 64 * 1024


@dataclass(frozen=True)
class Uevent:
    action: str
    devpath: str
    env: dict[str, str]

    @property
    def subsystem(self) -> str:
        return self.env.get("SUBSYSTEM", "")

    @property
    def devtype(self) -> str:
        return self.env.get("DEVTYPE", "")


def parse(data: bytes) -> Uevent | None:
    """One kernel message, or None for what is not one (udev's, a truncated header)."""
    if data.startswith(b"libudev\x00"):
        return None
    parts = data.split(b"\x00")
    head = parts[0].decode("utf-8", "replace")
    action, at, devpath = head.partition("@")
    if not at or not action or not devpath.startswith("/"):
        return None
    env: dict[str, str] = {}
    for part in parts[1:]:
        key, eq, value = part.decode("utf-8", "replace").partition("=")
        if eq and key:
            env[key] = value
    # The header is the kernel's word; the pairs repeat it (a mismatch is not a uevent).
    if env.get("ACTION", action) != action or env.get("DEVPATH", devpath) != devpath:
        return None
    return Uevent(action, devpath, env)


class UeventSocket:
    """The kernel's uevents; ``receive`` waits at most ``timeout`` seconds.  ``overflows``
    counts the times the kernel dropped messages because the agent was behind (ENOBUFS):
    the caller then looks at every device again."""

    def __init__(self, timeout: float = 0.5) -> None:
        self.sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT
        )
        try:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, 33, RECEIVE_BUFFER)  # SO_RCVBUFFORCE
            except OSError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            self.sock.bind((0, KERNEL_GROUP))
            self.sock.settimeout(timeout)
        except OSError:
            self.sock.close()
            raise
        self.overflows = 0
        self.foreign = 0

    def receive(self) -> Uevent | None:
        """The next kernel uevent, or None after the timeout or an overflow."""
        try:
            data, address = self.sock.recvfrom(MAX_MESSAGE)
        except TimeoutError:
            return None
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                self.overflows += 1
                return None
            raise
        if address[0] != 0:  # not from the kernel
            self.foreign += 1
            return None
        return parse(data)

    def close(self) -> None:
        self.sock.close()
