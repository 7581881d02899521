"""The FindFile hunt: walk the given roots for files by SHA-256, by name (fnmatch) or by a
YARA rule.

The walk never follows a symbolic link, stays out of ``/proc``, ``/sys``, ``/dev`` and every
kernel pseudo file system mounted elsewhere (a container's ``/proc`` copies, cgroups...),
looks at regular files only and is bounded (``max_depth``, a file count and a time budget):
a walk cut short says ``truncated: true``, never reads as "not found" for sure."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from garrison.agent.errors import JobError
from garrison.agent.jobs import codes, params
from garrison.agent.jobs.filerules import SPECIAL_TREES, under
from garrison.agent.scan.signatures import SignatureError, compile_yara_source

PSEUDO_FS = frozenset(
    {
        "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs", "debugfs",
        "tracefs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs",
        "binfmt_misc", "efivarfs", "selinuxfs", "nsfs", "rpc_pipefs",
    }
)  # fmt: skip
MAX_FILES = 500_000
TIME_BUDGET = 600.0  # seconds
MAX_MATCHES = 10_000
READ_CHUNK = 1 << 20


@dataclass
class Walk:
    scanned: int = 0
    truncated: bool = False
    matches: list[dict[str, Any]] = field(default_factory=list)


def special_mounts(mounts: str = "/proc/self/mounts") -> set[str]:
    """Mount points of kernel pseudo file systems (skipped wherever they are mounted)."""
    found: set[str] = set()
    with contextlib.suppress(OSError), open(mounts, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] in PSEUDO_FS:
                found.add(parts[1].replace("\\040", " "))
    return found


def walk(
    roots: list[str], max_depth: int, deadline: float, max_files: int = MAX_FILES
) -> Iterator[tuple[str, os.stat_result] | None]:
    """(path, lstat) of each regular file; a None item says the walk was cut short."""
    skip = special_mounts()
    stack = [(root.rstrip("/") or "/", 0) for root in reversed(roots)]
    seen_dirs: set[tuple[int, int]] = set()
    count = 0
    while stack:
        directory, depth = stack.pop()
        if directory in skip or any(under(directory, t) for t in SPECIAL_TREES):
            continue
        try:
            st = os.lstat(directory)
            if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) in seen_dirs:
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(directory))
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            if time.monotonic() > deadline or count >= max_files:
                yield None
                return
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth < max_depth:
                        subdirs.append((entry.path, depth + 1))
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            count += 1
            yield entry.path, st
        stack.extend(reversed(subdirs))


def read_file(path: str, limit: int) -> tuple[bytes | None, str | None]:
    """(bytes when at most ``limit``, else None; sha256) from one open; (None, None) when it
    cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None, None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, None
        h = hashlib.sha256()
        kept: list[bytes] | None = []
        size = 0
        while chunk := os.read(fd, READ_CHUNK):
            h.update(chunk)
            size += len(chunk)
            if kept is not None and size <= limit:
                kept.append(chunk)
            else:
                kept = None
        return (b"".join(kept) if kept is not None else None), h.hexdigest()
    except OSError:
        return None, None
    finally:
        os.close(fd)


Matcher = Callable[[str, os.stat_result], str | None]  # the sha256 of a match, or None


def matcher(question: dict[str, Any], max_size: int) -> Matcher:
    which = params.exactly_one(question, ("sha256", "glob", "yara"))
    if which == "sha256":
        wanted = params.sha256(question)

        def by_hash(path: str, st: os.stat_result) -> str | None:
            _, sha = read_file(path, 0)
            return sha if sha == wanted else None

        return by_hash
    if which == "glob":
        pattern = params.text(question, "glob", max_length=1024)

        def by_name(path: str, st: os.stat_result) -> str | None:
            if not fnmatch.fnmatchcase(os.path.basename(path), pattern):
                return None
            return read_file(path, 0)[1] or ""

        return by_name
    source = params.text(question, "yara", max_length=1 << 20)
    try:
        rules = compile_yara_source(source)
    except SignatureError as exc:
        raise JobError(f"the hunt's YARA rule: {exc}", codes.BAD_JOB) from None

    def by_rule(path: str, st: os.stat_result) -> str | None:
        if st.st_size > max_size:
            return None
        data, sha = read_file(path, max_size)
        if data is None or sha is None:
            return None
        try:
            return sha if rules.match(data=data, timeout=60) else None
        except Exception:  # a yara.TimeoutError on one file must not end the hunt
            return None

    return by_rule


def find_file(
    question: dict[str, Any], max_size: int, budget: float = TIME_BUDGET
) -> dict[str, Any]:
    match = matcher(question, max_size)
    roots = params.string_list(question, "roots", max_items=64, max_length=4096, default=["/"])
    if not all(r.startswith("/") and ".." not in r.split("/") for r in roots):
        raise params.bad("roots must be absolute directories without '..'")
    depth = params.integer(question, "max_depth", 32, minimum=0, maximum=256)
    result = Walk()
    for item in walk(roots, depth, time.monotonic() + budget):
        if item is None:
            result.truncated = True
            break
        path, st = item
        result.scanned += 1
        sha = match(path, st)
        if sha is not None:
            result.matches.append({"path": path, "sha256": sha, "size": st.st_size})
            if len(result.matches) >= MAX_MATCHES:
                result.truncated = True
                break
    return {
        "found": bool(result.matches),
        "matches": result.matches,
        "scanned": result.scanned,
        "truncated": result.truncated,
    }
