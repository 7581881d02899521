"""What one ``connect()`` costs on loopback with N connections already open to the same
listener, from one source address or from several (``--sources K``, bound with
IP_BIND_ADDRESS_NO_PORT so the port is picked against the whole 4-tuple).

    python -m bench.connect_cost [--sources 4]

Issue 20's fleet generator spent most of its time in ``open_connection``: past about half
of the ephemeral range (net.ipv4.ip_local_port_range) open toward one server port, each
connect() searches the range (bench/findings.md, "Issue 20: 100,000 agents, the cause
found").  The listener runs in a child process (its own descriptor limit); the timed
connections are reset on close (SO_LINGER 0) so that they leave no TIME_WAIT behind.
"""

from __future__ import annotations

import argparse
import socket
import struct
import subprocess
import sys
import time

from bench.rawhttp import IP_BIND_ADDRESS_NO_PORT

LISTENER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(4096)
print(s.getsockname()[1], flush=True)
held = []
while True:
    held.append(s.accept()[0])
"""
STEPS = (0, 8_000, 14_000, 16_000)  # the listener holds every timed one too: 20,000 here
TIMED = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=0, help="source addresses 127.0.0.2...")
    args = parser.parse_args()
    sources = [f"127.0.0.{i}" for i in range(2, 2 + args.sources)]
    listener = subprocess.Popen(
        [sys.executable, "-c", LISTENER],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if listener.stdout is None:
        raise RuntimeError("the listener has no stdout")
    port = int(listener.stdout.readline())
    opened = 0

    def new_socket() -> socket.socket:
        nonlocal opened
        sock = socket.socket()
        if sources:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((sources[opened % len(sources)], 0))
        opened += 1
        return sock

    held: list[socket.socket] = []
    try:
        for target in STEPS:
            while len(held) < target:
                sock = new_socket()
                sock.connect(("127.0.0.1", port))
                held.append(sock)
            t0 = time.perf_counter()
            for _ in range(TIMED):
                sock = new_socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.connect(("127.0.0.1", port))
                sock.close()
            each = (time.perf_counter() - t0) / TIMED * 1e6
            print(f"{target:6,d} open: connect + close {each:8.1f} us", flush=True)
    except OSError as exc:  # the descriptor limit of either side ends the series
        print(f"stopped at {len(held):,} open: {exc}", flush=True)
    finally:
        listener.kill()
        for sock in held:
            sock.close()


if __name__ == "__main__":
    main()
