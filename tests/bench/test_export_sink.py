"""The export benchmark's receivers (bench/export_sink.py) take a peer's reset as the end of
its stream: an exporter that closes with answers still unread in its buffer resets the
connection, and the sink must go on counting without printing a traceback."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bench.certs import make_certs
from tests.bench.run import ROOT
from tests.support import wait_for

# What each receiver is sent before the reset: enough to have it answer (RELP, control) or
# wait in the middle of a read (stream, HTTP body).
BEFORE_RESET = {
    "relp": b"1 open 0\n2 syslog 5 hello\n",
    "tcp": b"<13>1 - - - - - - one\n",
    "http": b"POST / HTTP/1.1\r\ncontent-length: 100\r\n\r\nabc",
    "control": b"stats\n",
}


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _stats(port: int) -> dict[str, int]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"stats\n")
        line = sock.makefile("rb").readline()
    counts: dict[str, int] = json.loads(line)
    return counts


@pytest.mark.parametrize("receiver", list(BEFORE_RESET))
def test_a_reset_connection_ends_its_stream_without_a_traceback(
    tmp_path: Path, receiver: str
) -> None:
    certs = make_certs(tmp_path / "certs")
    sink = subprocess.Popen(
        [sys.executable, "-m", "bench.export_sink", str(certs.cert), str(certs.key)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert sink.stdout is not None
        ports: dict[str, int] = json.loads(sink.stdout.readline())
        sock = socket.create_connection(("127.0.0.1", ports[receiver]), timeout=10)
        sock.sendall(BEFORE_RESET[receiver])
        if receiver in ("relp", "control"):
            # Its answer has arrived and stays unread: the close below is a reset.
            sock.recv(1, socket.MSG_PEEK)
        elif receiver == "tcp":
            wait_for(
                lambda: _stats(ports["control"])["tcp_bytes"] > 0,
                timeout=10,
                what="the sink counted the bytes",
            )
        _reset(sock)
        # The sink still serves, and counts what came before the reset.
        counts = _stats(ports["control"])
        if receiver == "relp":
            assert counts["relp_messages"] == 1
        _, stderr = sink.communicate(b"", timeout=30)
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    assert sink.returncode == 0, stderr
    assert b"Traceback" not in stderr, stderr.decode()
