"""Uploading a file to the server's file storage (``PUT /api/files/<sha256>``): a response
job's file (``?job_id=``) or a detected sample with its alert (``?alert=``).

The hash in the URL is computed by reading the open fd once; the body is then streamed from
the same fd (rewound) and hashed again on the way: a file that changed in between is caught
by the server (400, hash mismatch) and by this second hash."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from garrison.agent.errors import LocalError, ServerError

if TYPE_CHECKING:
    from garrison.agent.context import Agent

CHUNK = 256 * 1024
TIMEOUT = 300.0  # per read or write of the connection, not for the whole file


@dataclass(frozen=True)
class Uploaded:
    sha256: str
    size: int


def digest(fd: int, size: int) -> str:
    """SHA-256 of the first ``size`` bytes of ``fd``; LocalError when it has fewer."""
    os.lseek(fd, 0, os.SEEK_SET)
    h = hashlib.sha256()
    left = size
    while left > 0:
        chunk = os.read(fd, min(CHUNK, left))
        if not chunk:
            raise LocalError("the file shrank while it was read")
        h.update(chunk)
        left -= len(chunk)
    return h.hexdigest()


def _chunks(fd: int, size: int, h: Any) -> Iterator[bytes]:
    os.lseek(fd, 0, os.SEEK_SET)
    left = size
    while left > 0:
        chunk = os.read(fd, min(CHUNK, left))
        if not chunk:
            raise LocalError("the file shrank while it was uploaded")
        h.update(chunk)
        left -= len(chunk)
        yield chunk


def send(agent: Agent, fd: int, size: int, query: dict[str, str | int]) -> Uploaded:
    """Upload ``size`` bytes of ``fd``.  Raises the transport's typed errors (RefusedError
    with the server's status and reason), or LocalError when the file changed meanwhile."""
    sha = digest(fd, size)
    again = hashlib.sha256()
    with agent.transport(timeout=TIMEOUT) as transport:
        answer = transport.put_stream(f"files/{sha}", _chunks(fd, size, again), size, query)
    if again.hexdigest() != sha:
        raise LocalError("the file changed while it was uploaded")
    if not isinstance(answer, dict) or answer.get("sha256", sha) != sha:
        raise ServerError(f"the server's answer to the upload is unexpected: {answer!r:.200}")
    return Uploaded(sha, size)
