"""Uploading a file to the server's file storage (``PUT /api/files/<sha256>``).

The hash in the URL is computed by reading the open fd once; the body is then streamed from
the same fd (rewound) and hashed again on the way: a file that changed in between is caught
by the server (400, hash mismatch) and by this second hash, and reported as such."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from garrison.agent.context import Agent
from garrison.agent.errors import AgentError, JobError, RefusedError
from garrison.agent.jobs import codes

CHUNK = 256 * 1024


@dataclass(frozen=True)
class Uploaded:
    sha256: str
    size: int


def digest(fd: int, size: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    h = hashlib.sha256()
    left = size
    while left > 0:
        chunk = os.read(fd, min(CHUNK, left))
        if not chunk:
            break
        h.update(chunk)
        left -= len(chunk)
    if left:
        raise JobError("the file shrank while it was read", codes.UPLOAD_FAILED)
    return h.hexdigest()


def _chunks(fd: int, size: int, h: hashlib._Hash) -> Iterator[bytes]:
    os.lseek(fd, 0, os.SEEK_SET)
    left = size
    while left > 0:
        chunk = os.read(fd, min(CHUNK, left))
        if not chunk:
            raise OSError("the file shrank while it was uploaded")
        h.update(chunk)
        left -= len(chunk)
        yield chunk


def put(agent: Agent, fd: int, size: int, query: dict[str, str | int]) -> Uploaded:
    """Upload ``size`` bytes of ``fd``; raises UPLOAD_FAILED with the server's reason."""
    sha = digest(fd, size)
    again = hashlib.sha256()
    try:
        with agent.transport(timeout=300) as transport:
            answer = transport.put_stream(f"files/{sha}", _chunks(fd, size, again), size, query)
    except RefusedError as exc:
        raise JobError(f"upload refused: {exc.message}", codes.UPLOAD_FAILED) from None
    except AgentError as exc:
        raise JobError(f"upload failed: {exc.message}", codes.UPLOAD_FAILED) from None
    except OSError as exc:
        raise JobError(f"upload failed: {exc}", codes.UPLOAD_FAILED) from None
    if again.hexdigest() != sha:
        raise JobError("the file changed while it was uploaded", codes.UPLOAD_FAILED)
    if not isinstance(answer, dict) or answer.get("sha256") not in (None, sha):
        raise JobError(f"the server's answer to the upload is unexpected: {answer!r:.200}",
                       codes.UPLOAD_FAILED)  # fmt: skip
    return Uploaded(sha, size)
