"""The receivers the export benchmark sends to, in a process of their own (on the load
generator's core), so that receiving never competes with the exporter for the GIL.

    python -m bench.export_sink CERT KEY

Listens on 127.0.0.1 for syslog over TCP, TLS and UDP, RELP (acknowledging each message as
rsyslog's imrelp does) and HTTP POST (answering 200), discards what it receives and counts
it.  Prints one JSON line with the ports, then serves until its standard input closes.  A
line ``stats`` sent to the control port is answered with the counts as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

COUNTS: dict[str, int] = {
    "tcp_bytes": 0,
    "tls_bytes": 0,
    "udp_datagrams": 0,
    "udp_bytes": 0,
    "relp_messages": 0,
    "http_requests": 0,
    "http_bytes": 0,
}
RELP_OPEN_ANSWER = b"200 OK\nrelp_version=0\nrelp_software=garrison-bench\ncommands=syslog"


def relp_frame(txnr: bytes, command: bytes, data: bytes) -> bytes:
    head = b"%s %s %d" % (txnr, command, len(data))
    return head + (b" " + data if data else b"") + b"\n"


def receiver(handle: Handler) -> Handler:
    """``handle`` until its peer is gone, then the connection closed.  An exporter may end
    its connection with a reset (RST, e.g. closing with unread answers in its buffer): that
    is the end of its stream as an EOF is, not an error (asyncio would print it as an
    "Unhandled exception in client_connected_cb" traceback)."""

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handle(reader, writer)
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            writer.close()

    return run


def stream_counter(key: str) -> Handler:
    @receiver
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(1 << 20):
            COUNTS[key] += len(chunk)

    return handle


@receiver
async def relp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A RELP receiver: parses each frame by its length and answers ``rsp 200 OK``."""
    buffer = b""
    while chunk := await reader.read(1 << 20):
        buffer += chunk
        answers = []
        while True:
            first = buffer.find(b" ")
            second = buffer.find(b" ", first + 1)
            if first < 0 or second < 0:
                break
            end_of_length = second + 1
            while end_of_length < len(buffer) and buffer[end_of_length] in b"0123456789":
                end_of_length += 1
            if end_of_length >= len(buffer):
                break
            length = int(buffer[second + 1 : end_of_length])
            start = end_of_length + (1 if length else 0)
            if len(buffer) < start + length + 1:
                break
            txnr, command = buffer[:first], buffer[first + 1 : second]
            buffer = buffer[start + length + 1 :]
            if command == b"syslog":
                COUNTS["relp_messages"] += 1
                answers.append(relp_frame(txnr, b"rsp", b"200 OK"))
            elif command == b"open":
                answers.append(relp_frame(txnr, b"rsp", RELP_OPEN_ANSWER))
            elif command == b"close":
                answers.append(relp_frame(txnr, b"rsp", b"200 OK"))
                answers.append(relp_frame(b"0", b"serverclose", b""))
        if answers:
            writer.write(b"".join(answers))
            await writer.drain()


@receiver
async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """HTTP/1.1 with keep-alive: reads each request's Content-Length body, answers 200."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        COUNTS["http_requests"] += 1
        COUNTS["http_bytes"] += len(body)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()


@receiver
async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        if line.strip() == b"stats":
            writer.write(json.dumps(COUNTS).encode() + b"\n")
            await writer.drain()


class Datagrams(asyncio.DatagramProtocol):
    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        COUNTS["udp_datagrams"] += 1
        COUNTS["udp_bytes"] += len(data)


async def serve(cert: str, key: str) -> None:
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    servers = {
        "tcp": await asyncio.start_server(stream_counter("tcp_bytes"), "127.0.0.1", 0),
        "tls": await asyncio.start_server(stream_counter("tls_bytes"), "127.0.0.1", 0, ssl=context),
        "relp": await asyncio.start_server(relp, "127.0.0.1", 0),
        "http": await asyncio.start_server(http, "127.0.0.1", 0),
        "control": await asyncio.start_server(control, "127.0.0.1", 0),
    }
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # A large receive buffer, as a syslog receiver would set: the kernel drops what the
    # buffer cannot hold, and the benchmark reports that loss.
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
    udp.bind(("127.0.0.1", 0))
    transport, _ = await loop.create_datagram_endpoint(Datagrams, sock=udp)
    ports = {name: s.sockets[0].getsockname()[1] for name, s in servers.items()}
    ports["udp"] = udp.getsockname()[1]
    print(json.dumps(ports), flush=True)
    # Serve until the benchmark closes our standard input (or exits).
    await loop.run_in_executor(None, sys.stdin.read)
    transport.close()
    for s in servers.values():
        s.close()


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python -m bench.export_sink CERT KEY")
    asyncio.run(serve(sys.argv[1], sys.argv[2]))


if __name__ == "__main__":
    main()
