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


READ_CHUNK = 16 * 1024
READ_MAX = 1024 * 1024  # an environment or command line past this is cut (bounded events)


def open_dir(pid: int) -> int | None:
    """A descriptor of ``/proc/<pid>`` (None: gone), for the ``dir_fd`` of the readers
    below: each file is then one ``openat`` of a short name, not a walk of
    ``/proc/<pid>/`` again, and every read is of this very process (the descriptor stays
    bound to it: when it is reaped the reads fail, even if its pid is reused meanwhile)."""
    try:
        return os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def _path(pid: int, name: str, dir_fd: int | None) -> str:
    return name if dir_fd is not None else f"/proc/{pid}/{name}"


def _read(path: str, dir_fd: int | None = None) -> bytes:
    """A /proc file's bytes.  Plain strings and ``os.open``/``os.read``, not ``pathlib`` nor
    ``open``: on the event path (several reads per exec) pathlib's path building cost a
    third of the sensor's time in the ``sensors`` benchmark's profile, and a buffered file
    object adds an fstat, an ioctl and an lseek to each read (bench/findings.md).  /proc
    files give what they have in one read: a read shorter than asked is the end."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        data = os.read(fd, READ_CHUNK)
        if len(data) < READ_CHUNK:
            return data
        parts = [data]
        total = len(data)
        while total < READ_MAX:
            more = os.read(fd, READ_CHUNK)
            if not more:
                break
            parts.append(more)
            total += len(more)
        return b"".join(parts)
    finally:
        os.close(fd)


def read_stat(pid: int, dir_fd: int | None = None) -> Stat | None:
    try:
        return parse_stat(_read(_path(pid, "stat", dir_fd), dir_fd).decode(errors="replace"))
    except OSError:
        return None


def unique_pid(pid: int, start_ticks: int, boot: str | None = None) -> str:
    """Stable across pid reuse and reboots: the boot id, the pid and its start time."""
    return f"{boot or boot_id()}-{pid}-{start_ticks}"


def parse_cmdline(raw: bytes) -> str:
    """NUL-separated arguments, joined with spaces as ``ps`` shows them; bounded."""
    args = raw.rstrip(b"\x00").split(b"\x00")
    text = " ".join(a.decode("utf-8", errors="replace") for a in args)
    return text[:MAX_COMMAND_LINE]


def read_cmdline(pid: int, dir_fd: int | None = None) -> str | None:
    try:
        raw = _read(_path(pid, "cmdline", dir_fd), dir_fd)
    except OSError:
        return None
    return parse_cmdline(raw) if raw else None  # empty: a zombie or a kernel thread


class Redactor:
    """Which variable names have their values redacted: one case-insensitive regular
    expression for the glob list, its answer remembered per name (the same few dozen names
    come with every exec, and the globs' leading ``*`` made each match cost microseconds:
    the environment parse was half of an exec's enrichment in the sensors benchmark)."""

    CACHE = 4096

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self._known: dict[str, bool] = {}

    def fullmatch(self, name: str) -> bool:
        known = self._known.get(name)
        if known is None:
            known = self.pattern.fullmatch(name) is not None
            if len(self._known) >= self.CACHE:
                self._known.clear()
            self._known[name] = known
        return known


def redactor(patterns: Iterable[str]) -> Redactor | None:
    """The redaction test for the glob list (None: redact nothing)."""
    globs = [p for p in patterns if p]
    if not globs:
        return None
    return Redactor(re.compile("|".join(fnmatch.translate(g) for g in globs), re.IGNORECASE))


def parse_environ(raw: bytes, redact: Redactor | None) -> dict[str, str]:
    """NAME=value pairs; values of names matching ``redact`` are replaced; bounded in count
    and length so one process cannot blow up an event.  Decoded once as a whole (NUL and
    ``=`` are ASCII: no UTF-8 sequence spans them), not entry by entry."""
    out: dict[str, str] = {}
    for entry in raw.decode("utf-8", errors="replace").split("\x00"):
        name, sep, value = entry.partition("=")
        if not sep or not name:
            continue
        if redact is not None and redact.fullmatch(name):
            out[name] = REDACTED
        else:
            out[name] = value[:MAX_ENV_VALUE]
        if len(out) >= MAX_ENV_VARS:
            break
    return out


def read_environ(pid: int, redact: Redactor | None) -> dict[str, str] | None:
    try:
        raw = _read(f"/proc/{pid}/environ")
    except OSError:
        return None
    return parse_environ(raw, redact)


class EnvironReader:
    """:func:`read_environ` with each environment block's parse remembered: most processes
    get the very environment their siblings got (a shell, a service manager, a build
    spawning the same tool), so the block's bytes are the key and a hit is one dict
    lookup instead of a parse of every variable (the parse was the sensor thread's largest
    cost in the sensors benchmark).  Bounded in entries and in the size of a block kept.
    The dict handed back is shared: callers must not change it."""

    ENTRIES = 128
    BLOCK_MAX = 64 * 1024

    def __init__(self, redact: Redactor | None) -> None:
        self.redact = redact
        self._known: dict[bytes, dict[str, str]] = {}

    def read(self, pid: int, dir_fd: int | None = None) -> dict[str, str] | None:
        try:
            raw = _read(_path(pid, "environ", dir_fd), dir_fd)
        except OSError:
            return None
        known = self._known.get(raw)
        if known is not None:
            return known
        parsed = parse_environ(raw, self.redact)
        if len(raw) <= self.BLOCK_MAX:
            if len(self._known) >= self.ENTRIES:
                del self._known[next(iter(self._known))]  # the oldest first
            self._known[raw] = parsed
        return parsed


def read_link(pid: int, name: str, dir_fd: int | None = None) -> str | None:
    try:
        target = os.readlink(_path(pid, name, dir_fd), dir_fd=dir_fd)
    except OSError:
        return None
    return target


@dataclass(frozen=True)
class Ids:
    uid: int
    gid: int
    login_uid: int | None


def _status_field(raw: bytes, tag: bytes) -> int | None:
    """The first number of the ``tag`` line (``b"\\nUid:"``) of a status file."""
    start = raw.find(tag)
    if start < 0:
        return None
    start += len(tag)
    end = raw.find(b"\n", start)
    fields = raw[start : end if end >= 0 else len(raw)].split()
    return int(fields[0]) if fields else None


def parse_status_ids(text: str | bytes) -> tuple[int, int] | None:
    """Real uid and gid from ``/proc/<pid>/status`` (found, not every line split: the
    file has some sixty lines)."""
    raw = text.encode() if isinstance(text, str) else text
    raw = b"\n" + raw
    uid = _status_field(raw, b"\nUid:")
    gid = _status_field(raw, b"\nGid:")
    return None if uid is None or gid is None else (uid, gid)


def read_status_ids(pid: int, dir_fd: int | None = None) -> tuple[int, int, int] | None:
    """Real uid, real gid and the number of threads, from ``/proc/<pid>/status``."""
    try:
        raw = b"\n" + _read(_path(pid, "status", dir_fd), dir_fd)
        uid = _status_field(raw, b"\nUid:")
        gid = _status_field(raw, b"\nGid:")
        threads = _status_field(raw, b"\nThreads:")
    except (OSError, ValueError):
        return None
    if uid is None or gid is None:
        return None
    return uid, gid, threads if threads is not None else 0


def read_login_uid(pid: int, dir_fd: int | None = None) -> int | None:
    """The audit login uid (None: no login session, or unreadable).  Set by writing
    ``/proc/self/loginuid`` (pam_loginuid), which the process connector does not report:
    it is read, never carried from a parent."""
    try:
        value = int(_read(_path(pid, "loginuid", dir_fd), dir_fd).strip())
    except (OSError, ValueError):
        return None
    return None if value == NO_LOGIN_UID else value


def read_ids(pid: int, dir_fd: int | None = None) -> Ids | None:
    found = read_status_ids(pid, dir_fd)
    if found is None:
        return None
    return Ids(found[0], found[1], read_login_uid(pid, dir_fd))


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
