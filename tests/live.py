"""A real ``garrison serve`` process on a free port, for tests that cross a process boundary."""

from __future__ import annotations

import os
import signal
import ssl
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
    """``output`` is what the process printed, read at ``stop``: it goes to ``log_path``, a
    file, because the server logs every request and a pipe nobody reads would fill up and
    block it."""

    url: str
    data_dir: Path
    process: subprocess.Popen[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    output: str = ""

    @property
    def ca_file(self) -> Path:
        """The server's CA (written at its first start with TLS on)."""
        return self.data_dir / "tls" / "ca.pem"

    @property
    def token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.output = self.log_path.read_text()
        return self.process.returncode


class PortTaken(RuntimeError):
    """The free port picked for the server was taken by another process before it bound."""


def start_server(
    data_dir: Path,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    wait: float = 30,
    tls: bool = False,
    extra_args: list[str] | None = None,
    port: int | None = None,
    ca: Path | None = None,
    host: str = "127.0.0.1",
) -> LiveServer:
    """Plain HTTP (``--tls off``) unless ``tls``: most tests are about something else, and
    the Armadito agent has no usable CA options.  ``ca``: what the health check trusts
    (default: the server's own CA).  ``host``: another local address (a veth end) for
    agents in a network namespace.  A port picked here and taken by another process between
    the pick and the bind (parallel tests) is picked again; a port the test gave is not."""
    attempts = 1 if port else 3
    for attempt in range(attempts):
        try:
            return _start(data_dir, database_url, extra_env, wait, tls, extra_args, port, ca, host)
        except PortTaken:
            if attempt == attempts - 1:
                raise
    raise RuntimeError("unreachable: the last attempt raises")


def _start(
    data_dir: Path,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    wait: float = 30,
    tls: bool = False,
    extra_args: list[str] | None = None,
    port: int | None = None,
    ca: Path | None = None,
    host: str = "127.0.0.1",
) -> LiveServer:
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    if database_url:
        env["GARRISON_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    # One process unless the test asks for workers: most tests look at one server process
    # (its log, its threads, its timing); the worker tests say how many they want.
    asks = "GARRISON_WORKERS" in env or "--workers" in (extra_args or [])
    workers = [] if asks else ["--workers", "1"]
    log_path = data_dir.parent / f"serve-{port}.log"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                *GARRISON,
                "serve",
                "--host",
                host,
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                *([] if tls else ["--tls", "off"]),
                *workers,
                *(extra_args or []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
    url = f"{'https' if tls else 'http'}://{host}:{port}"
    ca_file = ca or data_dir / "tls" / "ca.pem"

    def healthy() -> bool:
        if process.poll() is not None:
            output = log_path.read_text()
            if "address already in use" in output:
                raise PortTaken(f"port {port} was taken before garrison serve bound it")
            raise RuntimeError(f"garrison serve exited early:\n{output}")
        if tls and not ca_file.exists():
            return False
        try:
            verify = ssl.create_default_context(cafile=ca_file) if tls else True
            return httpx.get(f"{url}/admin/v1/health", timeout=1, verify=verify).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, timeout=wait, what="garrison serve healthy", every=0.1)
    except AssertionError:
        process.kill()
        process.wait()
        raise RuntimeError(
            f"garrison serve did not become healthy:\n{log_path.read_text()}"
        ) from None
    return LiveServer(url=url, data_dir=data_dir, process=process, log_path=log_path, env=env)
