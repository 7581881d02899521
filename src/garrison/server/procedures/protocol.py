"""The messages between the server and a procedure worker: a 4-byte big-endian length, then
that many bytes of JSON (orjson), over the worker's stdin and stdout pipes.

Server → worker: ``run`` (a procedure call), ``reply`` (the answer to a host call).
Worker → server: ``ready`` (once, at start), ``call`` (a host read: the server answers it
from the database), ``done`` (the run's outcome, with the writes it asks for).

Neither side reads a message longer than :data:`MAX_MESSAGE`: the worker refuses to send
one (the run fails), the server kills a worker that announces one.
"""

from __future__ import annotations

import os
import select
import struct
import time
from typing import Any

import orjson

HEADER = struct.Struct(">I")
MAX_MESSAGE = 1024 * 1024


class MessageTooLargeError(Exception):
    pass


class DeadlineError(Exception):
    """The deadline passed before the whole message arrived."""


def encode(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message)
    if len(body) > MAX_MESSAGE:
        raise MessageTooLargeError(f"a message of {len(body)} bytes is over {MAX_MESSAGE}")
    return HEADER.pack(len(body)) + body


def write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks = bytearray()
    poller = None
    if deadline is not None:
        # poll, not select: a busy server has descriptors above select's limit of 1024.
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while len(chunks) < size:
        if poller is not None and deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                raise DeadlineError
        chunk = os.read(fd, size - len(chunks))
        if not chunk:
            raise EOFError("the other end closed the pipe")
        chunks += chunk
    return bytes(chunks)


def read(fd: int, deadline: float | None = None) -> dict[str, Any]:
    """The next message; ``deadline`` (``time.monotonic()``) bounds the wait."""
    (size,) = HEADER.unpack(_read_exactly(fd, HEADER.size, deadline))
    if size > MAX_MESSAGE:
        raise MessageTooLargeError(f"a message of {size} bytes is over {MAX_MESSAGE}")
    message = orjson.loads(_read_exactly(fd, size, deadline))
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    return message
