"""Which filesystems the prevention listener marks.

Exec blocking by hash must see every exec, so in production its scope is every local
filesystem (``local``) while the block list has entries, and nothing while it is empty.
Tests and careful rollouts give mount points instead (a tmpfs they mounted).
"""

from __future__ import annotations

import os

LOCAL = "local"
# Filesystems that hold no executable a user can plant, or that are remote (a permission
# event there would hold processes on a network round trip of someone else's server).
NOT_LOCAL = frozenset(
    {
        "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs", "debugfs",
        "tracefs", "pstore", "bpf", "mqueue", "hugetlbfs", "configfs", "fusectl", "autofs",
        "binfmt_misc", "nsfs", "efivarfs", "rpc_pipefs", "nfs", "nfs4", "cifs", "smb3",
        "9p", "ceph", "glusterfs", "sshfs", "virtiofs",
    }
)  # fmt: skip


def _unescape(field: str) -> str:
    """/proc/self/mounts writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def local_mounts(mounts_text: str | None = None) -> list[str]:
    """Mount points of local filesystems, one per device (a bind mount of the same
    filesystem is still a separate mount: all are kept, fanotify marks mounts)."""
    if mounts_text is None:
        try:
            with open("/proc/self/mounts", encoding="utf-8", errors="replace") as handle:
                mounts_text = handle.read()
        except OSError:
            return []
    out: list[str] = []
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point, fstype = _unescape(parts[1]), parts[2]
        if fstype in NOT_LOCAL or fstype.startswith("fuse."):
            continue
        if point not in out:
            out.append(point)
    return out


def resolve(scope: list[str], mounts_text: str | None = None) -> list[str]:
    """The paths to mark for ``scope`` (``local`` or absolute paths), existing ones only."""
    out: list[str] = []
    for item in scope:
        paths = local_mounts(mounts_text) if item == LOCAL else [item]
        for path in paths:
            if path.startswith("/") and os.path.isdir(path) and path not in out:
                out.append(path)
    return out


def watched(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)
