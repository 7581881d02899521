"""A minimal asyncio HTTP/1.1 client for the load generator.

Thousands of simulated agents in one process: httpx's connection pool scans its connections
on every request, which costs more CPU than the server under test spends at 10,000
connections.  This client is one socket per connection, a request written in one call, and
a response read by Content-Length (or chunks), nothing else.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

# Linux's IP_BIND_ADDRESS_NO_PORT (not in Python's socket module before 3.12): bind() sets the
# source address only, and the port is picked at connect() against the whole 4-tuple.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class HttpError(Exception):
    pass


@dataclass
class Reply:
    status: int
    body: bytes
    close: bool


class Connection:
    """One keep-alive connection; reopened transparently when the server closed it."""

    def __init__(self, host: str, port: int, source: str | None = None) -> None:
        self.host, self.port, self.source = host, port, source
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        if self.source is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            return
        # From a given source address (another loopback address, say): each source has its
        # own ephemeral ports toward the server.  With one source, past ~14,000 connections
        # open to one server port, every connect() searched the port range for ~2 ms
        # (bench/findings.md, issue 20, "the cause found").
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((self.source, 0))
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
        except BaseException:
            sock.close()
            raise
        self.reader, self.writer = await asyncio.open_connection(sock=sock)

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
