"""The export benchmark in its tiny size, so it never rots (no timing is asserted): every
format over every transport, each beside its floor, and nothing lost on a stream."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.run import run_bench


def test_export_benchmark_reports_each_format_and_transport_beside_its_floor(
    tmp_path: Path,
) -> None:
    out = tmp_path / "export.json"
    done = run_bench("bench.export", "--events", "200", "--batch", "50", "--out", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    formats = ["eset-json", "leef", "leef2", "cef"]
    transports = ["udp", "tcp", "tls", "relp", "file", "http"]
    assert [(row["transport"], row["format"]) for row in result["formats"]] == [
        (transport, fmt) for transport in transports for fmt in formats
    ]
    for row in result["formats"]:
        assert row["events"] == 200
        assert row["bytes"] > 0
        assert row["floor_events_per_second"] > 0
        assert row["garrison_events_per_second"] > 0
        if row["transport"] != "udp":
            assert row["lost"] == 0, row
    # The receivers saw no connection reset (a TLS close with unread session tickets).
    assert "Traceback" not in done.stderr, done.stderr
