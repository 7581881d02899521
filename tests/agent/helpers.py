"""Helpers for agent tests: EICAR built at run time from two halves, and the real CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HEAD = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$"
TAIL = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
EICAR_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
AGENT = [sys.executable, "-c", "from garrison.agent.cli import main; main()"]


def eicar() -> bytes:
    return (HEAD + TAIL).encode("ascii")


def write_eicar(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(eicar())
    return path


def agent_env(state_dir: Path, uuid: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    env["GARRISON_AGENT_STATE_DIR"] = str(state_dir)
    env["GARRISON_AGENT_UUID"] = uuid
    return env


def run_agent(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENT, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@contextlib.contextmanager
def mounted_tmpfs(prefix: str, options: str = "size=16m", base_mode: int = 0o700) -> Iterator[Path]:
    """A tmpfs of the test's own, unmounted afterwards: the only filesystem a fanotify test
    may mark (a mark on a shared mount would hold every process on the machine)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(base_mode)
    mount = base / "fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(base, ignore_errors=True)
