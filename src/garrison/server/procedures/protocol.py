"""The messages between the server and a procedure worker: a 4-byte big-endian length, then
that many bytes of JSON (orjson), over the worker's stdin and stdout pipes.

Server → worker: ``runs`` (a batch: the procedures' sources once, then up to
:data:`MAX_RUNS` runs, each a procedure's index and its arguments, with the limits of each
run), ``reply`` (the answer to a host call).
Worker → server: ``ready`` (once, at start), ``call`` (a host read: the server answers it
from the database), ``done`` (one per run, in order, with its ``index`` in the batch: the
run's outcome, with the writes it asks for).  The worker runs a batch's runs one after
another and writes each ``done`` within about a millisecond of that run's end (several
together when runs are quick; the batch's last at once), so the server knows which runs are
over if it has to kill the worker in the middle of a batch.

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
# Runs in one ``runs`` message, and the bytes of their arguments: a batch is cut at either
# (a single run's arguments may take up to MAX_MESSAGE).
MAX_RUNS = 64
MAX_BATCH_ARGS = MAX_MESSAGE // 2


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


class Reader:
    """Messages from one pipe, read in chunks: the ``done`` messages of a batch's quick runs
    arrive together and are taken from one ``os.read`` instead of two reads and a poll
    each.  One per pipe, for as long as the pipe lives (what it has buffered is the
    pipe's)."""

    CHUNK = 256 * 1024

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def _fill(self, size: int, deadline: float | None) -> None:
        while len(self.buffer) < size:
            if deadline is not None:
                # Past the deadline, what the other end already wrote is still taken (a
                # poll that does not wait): only silence past it is a DeadlineError.
                remaining = max(deadline - time.monotonic(), 0.0)
                if not self.poller.poll(remaining * 1000):
                    raise DeadlineError
            chunk = os.read(self.fd, max(self.CHUNK, size - len(self.buffer)))
            if not chunk:
                raise EOFError("the other end closed the pipe")
            self.buffer += chunk

    def read(self, deadline: float | None = None) -> dict[str, Any]:
        """The next message; ``deadline`` (``time.monotonic()``) bounds the wait for it
        (one already buffered is returned whatever the time)."""
        self._fill(HEADER.size, deadline)
        (size,) = HEADER.unpack_from(self.buffer)
        if size > MAX_MESSAGE:
            raise MessageTooLargeError(f"a message of {size} bytes is over {MAX_MESSAGE}")
        self._fill(HEADER.size + size, deadline)
        body = bytes(self.buffer[HEADER.size : HEADER.size + size])
        del self.buffer[: HEADER.size + size]
        message = orjson.loads(body)
        if not isinstance(message, dict):
            raise ValueError("a message must be a JSON object")
        return message


def read(fd: int, deadline: float | None = None) -> dict[str, Any]:
    """The next message; ``deadline`` (``time.monotonic()``) bounds the wait."""
    return read_sized(fd, deadline)[0]


def read_sized(fd: int, deadline: float | None = None) -> tuple[dict[str, Any], int]:
    """The next message and the size of its body in bytes."""
    (size,) = HEADER.unpack(_read_exactly(fd, HEADER.size, deadline))
    if size > MAX_MESSAGE:
        raise MessageTooLargeError(f"a message of {size} bytes is over {MAX_MESSAGE}")
    message = orjson.loads(_read_exactly(fd, size, deadline))
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    return message, size
