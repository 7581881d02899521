"""``garrison serve --workers N``: N server processes on one listening socket.

The supervisor (the ``garrison serve`` process) prepares the database once (migrations, the
first start), binds and listens on the port itself, then spawns N workers that each build
their own app (``create_app``) and accept on that same socket: one accept queue, so a worker
that dies leaves the connections still queued to the others (with ``SO_REUSEPORT`` each
socket has its own queue, lost with its process).  A worker that dies is started again; a
SIGTERM or SIGINT to the supervisor stops every worker gracefully, and a supervisor killed
outright takes its workers with it (``PR_SET_PDEATHSIG``).

What one process used to hold alone is shared through the database, as between nodes: see
docs/operations.md, "Workers and nodes".
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from garrison.server.settings import Settings

# A worker that dies within this many seconds of its start counts as a crash loop: the next
# start waits (doubling up to RESTART_MAX_SECONDS) instead of spinning.
STABLE_SECONDS = 5.0
RESTART_MAX_SECONDS = 30.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to build and serve the app, picklable (workers are spawned,
    not forked): the settings, and uvicorn's options as plain values (TLS is in the settings:
    each worker builds its own SSL context from the files the supervisor prepared)."""

    settings: Settings
    uvicorn_options: dict[str, Any] = field(default_factory=dict)


def default_workers(backend: str) -> int:
    """Every core on PostgreSQL; one on SQLite, whose single writer more processes do not
    widen (docs/operations.md has the measurements)."""
    if backend != "postgresql":
        return 1
    return max(1, len(os.sched_getaffinity(0)))


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound and listening, before any worker exists: every worker accepts on it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _die_with_parent(parent: int) -> None:
    """Linux: this process gets SIGKILL when the supervisor ends, however it ends."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def worker_main(spec: WorkerSpec, sock: socket.socket, index: int, parent: int) -> None:
    """A worker's entry point: its own database engine, its own app, the shared socket."""
    _die_with_parent(parent)
    os.umask(0o077)
    os.environ["GARRISON_WORKER"] = str(index)
    from garrison.cli.server import (
        configure_logging,
        graceful_server,
        listen_tls,
        stop_long_polls,
    )
    from garrison.server.app import create_app
    from garrison.server.store.engine import Database

    configure_logging(spec.settings)
    settings = spec.settings
    db = Database(
        settings.resolved_database_url(),
        settings.sqlite_synchronous,
        settings.database_pool_timeout,
    )
    stop_tls = threading.Event()
    try:
        app = create_app(settings, db)
        import uvicorn

        config = uvicorn.Config(app, **spec.uvicorn_options)
        if settings.tls:
            from garrison.server.tls.serving import ServerTls

            listen_tls(config, ServerTls.prepare(settings), settings, db, stop_tls)
        server = graceful_server(config)
        stop_long_polls(server, app)
        server.run(sockets=[sock])
    finally:
        stop_tls.set()
        db.dispose()
    sys.exit(0 if server.started else 1)


class Supervisor:
    """Starts ``count`` workers on ``sock`` and keeps that many running until told to stop."""

    def __init__(self, spec: WorkerSpec, sock: socket.socket, count: int, out: Any) -> None:
        self.spec = spec
        self.sock = sock
        self.count = count
        self.out = out
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, tuple[BaseProcess, float]] = {}
        self.delays: dict[int, float] = {}
        self.stopping = False

    def _start(self, index: int) -> None:
        process = self.context.Process(
            target=worker_main,
            args=(self.spec, self.sock, index, os.getpid()),
            name=f"garrison-worker-{index}",
        )
        process.start()
        self.workers[index] = (process, time.monotonic())

    def _stop(self, _sig: int, _frame: object) -> None:
        self.stopping = True

    def run(self) -> int:
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.count):
                self._start(index)
            self.out(f"started {self.count} workers (pids {', '.join(self.pids())})")
            while not self.stopping:
                self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._shutdown()
        return 0

    def pids(self) -> list[str]:
        return [str(p.pid) for p, _ in self.workers.values()]

    def _watch(self) -> None:
        sentinels = {p.sentinel: i for i, (p, _) in self.workers.items()}
        ready = wait(list(sentinels), timeout=1.0)
        for sentinel in ready:
            if self.stopping:
                return
            index = sentinels[sentinel] if isinstance(sentinel, int) else -1
            if index < 0:
                continue
            process, started = self.workers.pop(index)
            process.join()
            lived = time.monotonic() - started
            delay = 0.0
            if lived < STABLE_SECONDS:
                delay = min(max(self.delays.get(index, 0.5) * 2, 1.0), RESTART_MAX_SECONDS)
            self.delays[index] = delay
            self.out(
                f"worker {index} (pid {process.pid}) exited with {process.exitcode}; "
                f"starting it again{f' in {delay:.0f} s' if delay else ''}"
            )
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not self.stopping:
                time.sleep(0.1)
            if not self.stopping:
                self._start(index)

    def _shutdown(self) -> None:
        """Each worker answers its long-polls and finishes its requests (uvicorn's graceful
        shutdown); one still running after the grace period is killed."""
        for process, _ in self.workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        grace = self.spec.settings.graceful_shutdown_seconds + 5.0
        deadline = time.monotonic() + grace
        for process, _ in self.workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        self.sock.close()
