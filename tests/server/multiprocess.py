"""Which worker process of a `garrison serve --workers N` holds a connection, read from /proc,
so that a test can prove that two requests were served by two different processes."""

from __future__ import annotations

import http.client
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.live import LiveServer
from tests.support import wait_for


def worker_pids(server: LiveServer, count: int) -> list[int]:
    """The supervisor's worker children (not multiprocessing's resource tracker), once
    ``count`` of them run."""
    supervisor = server.process.pid

    def children() -> list[int]:
        found = []
        for task in Path(f"/proc/{supervisor}/task").iterdir():
            for pid in (task / "children").read_text().split():
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except FileNotFoundError:
                    continue
                if b"spawn_main" in cmdline:
                    found.append(int(pid))
        return sorted(found)

    return wait_for(children, lambda pids: len(pids) == count, what=f"{count} workers")


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _server_side_inode(server_port: int, client_port: int) -> int | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                return inode
    return None


def serving_worker(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """The worker holding the server side of the connection from ``client_port``."""
    inode = _server_side_inode(server_port, client_port)
    if inode is None:
        return None
    for pid in pids:
        if inode in _socket_inodes(pid):
            return pid
    return None


@dataclass
class Pinned:
    """One keep-alive connection, hence one worker for all its requests."""

    conn: http.client.HTTPConnection
    worker: int

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers=headers or {})
        response = self.conn.getresponse()
        raw = response.read()
        return response.status, dict(response.getheaders()), json.loads(raw) if raw else None

    def close(self) -> None:
        self.conn.close()


def pinned_on_every_worker(
    server: LiveServer, pids: list[int], per_worker: int = 1
) -> list[Pinned]:
    """Keep-alive connections until each worker holds ``per_worker`` of them (the kernel
    hands a new connection to whichever worker accepts first)."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    kept: list[Pinned] = []
    spare: list[http.client.HTTPConnection] = []
    for _ in range(200):
        if all(sum(p.worker == pid for p in kept) >= per_worker for pid in pids):
            break
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("GET", "/admin/v1/health")  # accepted and answered: a worker holds it
        conn.getresponse().read()
        client_port = conn.sock.getsockname()[1]
        worker = serving_worker(int(port), client_port, pids)
        if worker is not None and sum(p.worker == worker for p in kept) < per_worker:
            kept.append(Pinned(conn, worker))
        else:
            spare.append(conn)
    for conn in spare:
        conn.close()
    missing = [pid for pid in pids if not any(p.worker == pid for p in kept)]
    if missing:
        for pinned in kept:
            pinned.close()
        raise AssertionError(f"no connection reached workers {missing}")
    return kept
