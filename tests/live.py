"""A real ``garrison serve`` process on a free port, for tests that cross a process boundary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import free_port
from tests.support import wait_for

GARRISON = [sys.executable, "-m", "garrison.cli"]


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    process: subprocess.Popen[str]
    env: dict[str, str] = field(default_factory=dict)
    output: str = ""

    @property
    def token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        self.output += out or ""
        return self.process.returncode


def start_server(
    data_dir: Path,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    wait: float = 30,
) -> LiveServer:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    if database_url:
        env["GARRISON_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    process = subprocess.Popen(
        [
            *GARRISON,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            out, _ = process.communicate()
            raise RuntimeError(f"garrison serve exited early:\n{out}")
        try:
            return httpx.get(f"{url}/admin/v1/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, timeout=wait, what="garrison serve healthy", every=0.1)
    except AssertionError:
        process.kill()
        out, _ = process.communicate()
        raise RuntimeError(f"garrison serve did not become healthy:\n{out}") from None
    return LiveServer(url=url, data_dir=data_dir, process=process, env=env)
