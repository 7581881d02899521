"""The export benchmark in its tiny size, so it never rots (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_export_benchmark_reports_each_format_beside_the_socket_floor(tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.export",
            "--events",
            "200",
            "--batch",
            "50",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert [row["format"] for row in result["formats"]] == ["eset-json", "leef", "leef2", "cef"]
    for row in result["formats"]:
        assert row["events"] == 200
        assert row["bytes"] > 0
        assert row["floor_events_per_second"] > 0
        assert row["garrison_events_per_second"] > 0
