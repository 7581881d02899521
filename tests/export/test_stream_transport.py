"""The TCP/TLS stream transport against an OpenSSL-based TLS 1.3 receiver, which sends
session tickets after the handshake: the transport must keep its one connection and lose
nothing (closing on a readable ticket would reset the connection and drop unread bytes), yet
still notice a receiver that really closed."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.certs import make_certs
from garrison.server.export.transports import StreamTransport
from tests.support import wait_for


@dataclass
class TlsReceiver:
    context: ssl.SSLContext
    server: socket.socket = field(default_factory=socket.socket)
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)
    live: list[ssl.SSLSocket] = field(default_factory=list)
    close_after: int | None = None  # the first connection closes once this much arrived
    closed: threading.Event = field(default_factory=threading.Event)  # ... and has closed

    def start(self) -> int:
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        threading.Thread(target=self._accept, daemon=True).start()
        port: int = self.server.getsockname()[1]
        return port

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.server.accept()
            except OSError:
                return
            conn = self.context.wrap_socket(raw, server_side=True)
            self.connections += 1
            self.live.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: ssl.SSLSocket) -> None:
        try:
            while chunk := conn.recv(65536):
                self.received += chunk
                if self.close_after is not None and len(self.received) >= self.close_after:
                    self.close_after = None
                    conn.close()
                    self.closed.set()
                    return
        except OSError:
            pass

    def wait_received(self, size: int) -> None:
        wait_for(lambda: len(self.received) >= size, timeout=10, what=f"{size} bytes received")


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[TlsReceiver, ssl.SSLContext]]:
    certs = make_certs(tmp_path / "certs")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(certs.cert), str(certs.key))
    server_context.minimum_version = ssl.TLSVersion.TLSv1_3
    server_context.num_tickets = 2
    client_context = ssl.create_default_context(cafile=str(certs.ca))
    sink = TlsReceiver(server_context)
    yield sink, client_context
    sink.server.close()
    for conn in sink.live:
        conn.close()


def test_tls_session_tickets_keep_the_connection_and_lose_nothing(
    receiver: tuple[TlsReceiver, ssl.SSLContext],
) -> None:
    sink, context = receiver
    port = sink.start()
    transport = StreamTransport("127.0.0.1", port, context)
    messages = [b"<14>1 - - - - - - message %05d\n" % i for i in range(3000)]
    for i in range(0, len(messages), 100):
        assert transport.send(messages[i : i + 100]) == 100
        time.sleep(0.002)  # let the tickets arrive between batches
    transport.close()
    expected = b"".join(messages)
    sink.wait_received(len(expected))
    assert bytes(sink.received) == expected
    assert sink.connections == 1


def test_a_connection_on_a_descriptor_past_1023_is_kept(
    receiver: tuple[TlsReceiver, ssl.SSLContext],
) -> None:
    """A server holding many agent connections gives its exporter's socket a descriptor
    past select()'s 1024: the liveness probe must not take that for a dead receiver."""
    sink, context = receiver
    port = sink.start()
    held: list[int] = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        transport = StreamTransport("127.0.0.1", port, context)
        messages = [b"<14>1 - - - - - - high fd %05d\n" % i for i in range(500)]
        for i in range(0, len(messages), 50):
            assert transport.send(messages[i : i + 50]) == 50
        transport.close()
    finally:
        for fd in held:
            os.close(fd)
    sink.wait_received(len(b"".join(messages)))
    assert sink.connections == 1


def test_a_tls_receiver_that_closed_is_noticed_before_the_next_write(
    receiver: tuple[TlsReceiver, ssl.SSLContext],
) -> None:
    sink, context = receiver
    sink.close_after = 6
    port = sink.start()
    transport = StreamTransport("127.0.0.1", port, context)
    transport.send([b"first\n"])
    sink.wait_received(6)
    wait_for(sink.closed.is_set, timeout=10, what="the receiver closing its end")
    transport.send([b"second\n"])
    transport.close()
    sink.wait_received(13)
    assert bytes(sink.received) == b"first\nsecond\n"
    assert sink.connections == 2
