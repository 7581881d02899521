"""What ``/proc/<pid>`` says about a process: identity, image, command line, environment.

Each reader returns None when the process (or that part of it) is gone or unreadable; the
sensor lists those fields in the event's ``unavailable`` flag instead of failing.
"""

from __future__ import annotations

import fnmatch
import functools
import grp
import os
import pwd
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
REDACTED = "<redacted>"
MAX_COMMAND_LINE = 32 * 1024
MAX_ENV_VARS = 256
MAX_ENV_VALUE = 2048
NO_LOGIN_UID = 4294967295  # (uid_t)-1: no login session


@functools.cache
def boot_id() -> str:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


@functools.cache
def boot_time() -> float:
    """Epoch seconds of the boot (``btime`` of /proc/stat)."""
    try:
        for line in (PROC / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


@functools.cache
def clock_ticks() -> int:
    return int(os.sysconf("SC_CLK_TCK"))


@dataclass(frozen=True)
class Stat:
    pid: int
    comm: str
    state: str
    ppid: int
    start_ticks: int  # field 22: start time after boot, in clock ticks

    @property
    def start_time(self) -> float:
        return boot_time() + self.start_ticks / clock_ticks()


def parse_stat(text: str) -> Stat | None:
    """``/proc/<pid>/stat``; the command name is in parentheses and may hold spaces and
    parentheses itself, so the fields are counted from the last ')'."""
    left, right = text.find("("), text.rfind(")")
    if left < 0 or right < left:
        return None
    fields = text[right + 2 :].split()
    if len(fields) < 20:
        return None
    try:
        return Stat(
            int(text[:left]), text[left + 1 : right], fields[0], int(fields[1]), int(fields[19])
        )
    except ValueError:
        return None


def _read(path: str) -> bytes:
    """A /proc file's bytes.  Plain strings and ``open``, not ``pathlib``: on the event path
    (several reads per exec) pathlib's path building cost a third of the sensor's time in
    the ``sensors`` benchmark's profile (bench/findings.md)."""
    with open(path, "rb") as f:
        return f.read()


def read_stat(pid: int) -> Stat | None:
    try:
        return parse_stat(_read(f"/proc/{pid}/stat").decode(errors="replace"))
    except OSError:
        return None


def unique_pid(pid: int, start_ticks: int, boot: str | None = None) -> str:
    """Stable across pid reuse and reboots: the boot id, the pid and its start time."""
    return f"{boot or boot_id()}-{pid}-{start_ticks}"


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").replace("\x00", " ")


def parse_cmdline(raw: bytes) -> str:
    """NUL-separated arguments, joined with spaces as ``ps`` shows them; bounded."""
    args = raw.rstrip(b"\x00").split(b"\x00")
    text = " ".join(a.decode("utf-8", errors="replace") for a in args)
    return text[:MAX_COMMAND_LINE]


def read_cmdline(pid: int) -> str | None:
    try:
        raw = _read(f"/proc/{pid}/cmdline")
    except OSError:
        return None
    return parse_cmdline(raw) if raw else None  # empty: a zombie or a kernel thread


def redactor(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive regular expression for the glob list (None: redact nothing)."""
    globs = [p for p in patterns if p]
    if not globs:
        return None
    return re.compile("|".join(fnmatch.translate(g) for g in globs), re.IGNORECASE)


def parse_environ(raw: bytes, redact: re.Pattern[str] | None) -> dict[str, str]:
    """NAME=value pairs; values of names matching ``redact`` are replaced; bounded in count
    and length so one process cannot blow up an event."""
    out: dict[str, str] = {}
    for entry in raw.split(b"\x00"):
        if not entry:
            continue
        name_b, sep, value_b = entry.partition(b"=")
        if not sep or not name_b:
            continue
        name = _text(name_b)
        if redact is not None and redact.fullmatch(name):
            out[name] = REDACTED
        else:
            out[name] = _text(value_b)[:MAX_ENV_VALUE]
        if len(out) >= MAX_ENV_VARS:
            break
    return out


def read_environ(pid: int, redact: re.Pattern[str] | None) -> dict[str, str] | None:
    try:
        raw = _read(f"/proc/{pid}/environ")
    except OSError:
        return None
    return parse_environ(raw, redact)


def read_link(pid: int, name: str) -> str | None:
    try:
        target = os.readlink(f"/proc/{pid}/{name}")
    except OSError:
        return None
    return target


@dataclass(frozen=True)
class Ids:
    uid: int
    gid: int
    login_uid: int | None


def parse_status_ids(text: str) -> tuple[int, int] | None:
    """Real uid and gid from ``/proc/<pid>/status``."""
    uid = gid = None
    for line in text.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
        elif line.startswith("Gid:"):
            gid = int(line.split()[1])
            break
    return None if uid is None or gid is None else (uid, gid)


def read_ids(pid: int) -> Ids | None:
    base = f"/proc/{pid}"
    try:
        ids = parse_status_ids(_read(f"{base}/status").decode(errors="replace"))
    except (OSError, ValueError):
        return None
    if ids is None:
        return None
    login: int | None = None
    try:
        value = int(_read(f"{base}/loginuid").strip())
        login = None if value == NO_LOGIN_UID else value
    except (OSError, ValueError):
        pass
    return Ids(ids[0], ids[1], login)


@functools.lru_cache(maxsize=1024)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@functools.lru_cache(maxsize=1024)
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
