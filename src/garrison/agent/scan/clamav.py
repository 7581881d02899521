"""Optional ClamAV backend: ``clamdscan`` (when clamd runs) or ``clamscan``, when installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

FOUND = re.compile(r"^(?P<path>.+): (?P<name>\S+) FOUND$")


@dataclass(frozen=True)
class ClamHit:
    path: str
    name: str


def find_scanner() -> list[str] | None:
    """The command to run, clamdscan first (its signatures are already loaded)."""
    if shutil.which("clamdscan"):
        return ["clamdscan", "--fdpass", "--no-summary", "--infected", "--stdout"]
    if shutil.which("clamscan"):
        return [
            "clamscan", "--no-summary", "--infected", "--stdout", "--recursive",
            "--follow-dir-symlinks=0", "--follow-file-symlinks=0",
        ]  # fmt: skip
    return None


def parse_output(text: str) -> list[ClamHit]:
    """``/path/file: Name FOUND`` lines; for archives the path may end in ``!member``."""
    hits = []
    for line in text.splitlines():
        match = FOUND.match(line.strip())
        if match:
            hits.append(ClamHit(match["path"], match["name"]))
    return hits


def version() -> str:
    command = find_scanner()
    if command is None:
        return ""
    try:
        out = subprocess.run(  # noqa: S603 - fixed command, no shell
            [command[0], "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


class ClamAVError(Exception):
    pass


def scan(paths: list[str], max_file_size: int, timeout: float = 3600) -> list[ClamHit]:
    command = find_scanner()
    if command is None:
        raise ClamAVError("ClamAV is not installed (no clamdscan or clamscan)")
    if command[0] == "clamscan":
        command = [*command, f"--max-filesize={max_file_size}", f"--max-scansize={max_file_size}"]
    try:
        out = subprocess.run(  # noqa: S603 - fixed command, no shell
            [*command, "--", *paths], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ClamAVError(f"ClamAV failed: {exc}") from None
    if out.returncode not in (0, 1):
        raise ClamAVError(f"ClamAV failed ({out.returncode}): {out.stderr.strip()[:300]}")
    return parse_output(out.stdout)
