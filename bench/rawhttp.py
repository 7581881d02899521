"""A minimal asyncio HTTP/1.1 client for the load generator.

Thousands of simulated agents in one process: httpx's connection pool scans its connections
on every request, which costs more CPU than the server under test spends at 10,000
connections.  This client is one socket per connection, a request written in one call, and
a response read by Content-Length (or chunks), nothing else.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


class HttpError(Exception):
    pass


@dataclass
class Reply:
    status: int
    body: bytes
    close: bool


class Connection:
    """One keep-alive connection; reopened transparently when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def open(self) -> None:
        """Connect now (a caller timing the connection apart from the request)."""
        if self.writer is None:
            await self._open()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        keep_alive: bool = True,
    ) -> Reply:
        fresh = self.writer is None
        if fresh:
            await self._open()
        try:
            return await self._exchange(method, path, headers or {}, body, keep_alive)
        except (ConnectionError, asyncio.IncompleteReadError):
            if fresh:
                raise
            # The server closed an idle keep-alive connection: one retry on a new one.
            self.close()
            await self._open()
            return await self._exchange(method, path, headers or {}, body, keep_alive)

    async def _exchange(
        self, method: str, path: str, headers: dict[str, str], body: bytes, keep_alive: bool
    ) -> Reply:
        if self.reader is None or self.writer is None:
            raise HttpError("connection is not open")
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        if not keep_alive:
            lines.append("Connection: close")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise HttpError(f"bad status line {status_line!r}")
        status = int(parts[1])
        length, chunked, close = None, False, not keep_alive
        for line in header_lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if chunked:
            data = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                data += chunk[:-2]
            payload = bytes(data)
        elif length is not None:
            payload = await self.reader.readexactly(length)
        else:
            payload = await self.reader.read()
            close = True
        if close:
            if not keep_alive:
                # Wait for the server's FIN before closing: the side that closes first keeps
                # the TIME_WAIT, and on the generator's side each one holds an ephemeral
                # port (28,000 on Linux) for 60 s.  A fleet opening 1,800 connections a second
                # ran out of them and spent its core searching for a free one.
                await self.reader.read()
            self.close()
        return Reply(status, payload, close)
