"""The path rules of every response job that reads or touches a file (GetFile, CollectFile,
DeleteFile, QuarantineFile), in the contract's order: an absolute path without ``..``,
resolved (``realpath``) inside an allowed root (``[response] allowed_roots``), not under
``/proc``, ``/sys`` or ``/dev``; then opened without following a last symlink and without
blocking (a FIFO must not hang the job), and the open file itself (``fstat``) must be the
regular file that was checked, within the size cap."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from garrison.agent.errors import JobError
from garrison.agent.jobs import codes

SPECIAL_TREES = ("/proc", "/sys", "/dev")


@dataclass(frozen=True)
class Checked:
    asked: str
    path: str  # resolved
    st: os.stat_result


def under(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return root == "/" or path == root or path.startswith(root + "/")


def resolve(asked: str, allowed_roots: list[str]) -> str:
    if not asked.startswith("/"):
        raise JobError(f"not an absolute path: {asked[:300]!r}", codes.REFUSED)
    if ".." in asked.split("/"):
        raise JobError(f"refused {asked[:300]}: a path may not hold '..'", codes.REFUSED)
    path = os.path.realpath(asked)
    roots = [os.path.realpath(r) for r in allowed_roots if r.startswith("/")]
    if not any(under(path, root) for root in roots):
        raise JobError(
            f"refused {asked[:300]}: it resolves to {path[:300]}, outside the allowed roots "
            f"({', '.join(allowed_roots)})",
            codes.REFUSED,
        )
    if any(under(path, tree) for tree in SPECIAL_TREES):
        raise JobError(
            f"refused {asked[:300]}: {path[:300]} is a kernel or device file", codes.REFUSED
        )
    return path


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _os_error(asked: str, exc: OSError) -> JobError:
    if exc.errno == errno.ENOENT:
        return JobError(f"{asked[:300]}: no such file", codes.NOT_FOUND)
    if exc.errno == errno.ELOOP:
        return JobError(f"refused {asked[:300]}: it became a symbolic link", codes.REFUSED)
    return JobError(f"{asked[:300]}: {exc.strerror or exc}", codes.REFUSED)


def check(asked: str, allowed_roots: list[str], max_bytes: int | None = None) -> Checked:
    """The resolved path and its lstat, when the rules allow it (without opening it)."""
    path = resolve(asked, allowed_roots)
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise _os_error(asked, exc) from None
    if not stat.S_ISREG(st.st_mode):
        raise JobError(f"refused {asked[:300]}: it is {_kind(st.st_mode)}", codes.REFUSED)
    if max_bytes is not None and st.st_size > max_bytes:
        raise JobError(
            f"refused {asked[:300]}: {st.st_size} bytes is too big (the cap is {max_bytes})",
            codes.REFUSED,
        )
    return Checked(asked, path, st)


@contextlib.contextmanager
def open_checked(
    asked: str, allowed_roots: list[str], max_bytes: int | None = None
) -> Iterator[tuple[int, Checked]]:
    """An fd on the checked file; ``fstat`` of that very fd must be the file checked (a
    swap between the check and the open is refused)."""
    checked = check(asked, allowed_roots, max_bytes)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(checked.path, flags)
    except OSError as exc:
        raise _os_error(asked, exc) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (
            checked.st.st_dev,
            checked.st.st_ino,
        ):
            raise JobError(f"refused {asked[:300]}: it changed while being opened", codes.REFUSED)
        if max_bytes is not None and st.st_size > max_bytes:
            raise JobError(
                f"refused {asked[:300]}: {st.st_size} bytes is too big (the cap is {max_bytes})",
                codes.REFUSED,
            )
        yield fd, Checked(asked, checked.path, st)
    finally:
        os.close(fd)
