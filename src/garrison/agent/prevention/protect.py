"""What the agent never blocks: its own interpreter, its entry script and the python3 it
runs on.  A block list naming one of them would stop the agent (or every Python program the
host runs, the agent's updates included), so the content carrying it is refused whole and
the previous content stays; the hashes go to the server in State (``protected_sha256``),
which refuses to put them on the block list in the first place."""

from __future__ import annotations

import functools
import hashlib
import os
import sys

from garrison.agent.scan.blocklist import BlockList

SYSTEM_PYTHON = "/usr/bin/python3"
CHUNK = 1 << 20


def _sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            digest = hashlib.sha256()
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
            return digest.hexdigest()
    except OSError:
        return None


def _candidates() -> list[str]:
    paths = [sys.executable, SYSTEM_PYTHON]
    if sys.argv and sys.argv[0] and os.path.isfile(sys.argv[0]):
        paths.append(sys.argv[0])
    out: list[str] = []
    for path in paths:
        if not path:
            continue
        real = os.path.realpath(path)
        if os.path.isfile(real) and real not in out:
            out.append(real)
    return out


@functools.cache
def protected() -> dict[str, str]:
    """realpath -> SHA-256 of every protected file (read once per process)."""
    out: dict[str, str] = {}
    for path in _candidates():
        digest = _sha256(path)
        if digest is not None:
            out[path] = digest
    return out


def named_by(blocklist: BlockList) -> list[str]:
    """One line per protected file the block list names (by hash, path or name)."""
    problems: list[str] = []
    for path, digest in protected().items():
        if blocklist.contains("sha256", digest):
            problems.append(f"{path} (sha256 {digest})")
        else:
            rule = blocklist.match_path(path)
            if rule is not None:
                problems.append(f"{path} ({rule})")
    return problems


def is_protected(sha256: str) -> bool:
    return sha256 in protected().values()
