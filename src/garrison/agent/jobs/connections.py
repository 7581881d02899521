"""ListConnections: every TCP and UDP socket the kernel holds (NETLINK_SOCK_DIAG, as the port
sensor), with the process owning it when its ``/proc/<pid>/fd`` is readable."""

from __future__ import annotations

from typing import Any

from garrison.agent.context import Agent
from garrison.agent.errors import JobError
from garrison.agent.jobs import codes
from garrison.agent.jobs.params import Reply
from garrison.agent.jobstore import Job
from garrison.agent.sensors import procinfo
from garrison.agent.sensors.ports import socket_owners
from garrison.agent.sensors.sockdiag import STATE_NAMES, TCP_CLOSE, ListeningSocket, SockDiag

MAX_CONNECTIONS = 50_000


def state_name(sock: ListeningSocket) -> str:
    if sock.protocol == "udp":
        return "UNCONN" if sock.state == TCP_CLOSE else "ESTABLISHED"
    return STATE_NAMES.get(sock.state, str(sock.state))


def describe(sock: ListeningSocket, pid: int | None) -> dict[str, Any]:
    stat = procinfo.read_stat(pid) if pid is not None else None
    return {
        "protocol": sock.protocol if sock.ip_version == 4 else f"{sock.protocol}6",
        "state": state_name(sock),
        "local_ip": sock.address,
        "local_port": sock.port,
        "remote_ip": sock.remote_address,
        "remote_port": sock.remote_port,
        "pid": pid,
        "process": stat.comm if stat else None,
    }


def list_connections(agent: Agent, job: Job) -> Reply:
    try:
        diag = SockDiag()
        try:
            found = diag.sockets()
        finally:
            diag.close()
    except OSError as exc:
        raise JobError(f"the kernel's socket list is unreadable: {exc}", codes.FAILED) from None
    truncated = len(found) > MAX_CONNECTIONS
    found = found[:MAX_CONNECTIONS]
    owners = socket_owners({s.inode for s in found if s.inode})
    rows = [describe(s, owners.get(s.inode) if s.inode else None) for s in found]
    return Reply(f"{len(rows)} connection(s)", {"connections": rows, "truncated": truncated})
