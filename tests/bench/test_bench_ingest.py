"""The ingestion benchmark in its tiny size, so it never rots (no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.run import run_bench


def test_ingestion_benchmark_runs_and_reports_floor_and_ratio(tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    done = run_bench(
        "bench.ingest",
        "--events",
        "300",
        "--batch",
        "100",
        "--clients",
        "1",
        "--sustained",
        "2",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "floor ev/s" in done.stdout
    result = json.loads(out.read_text())
    assert result["events"] == 300
    assert result["floor_events_per_second"] > 0
    assert result["http_events_per_second"] > 0
    assert (
        result["ratio"]
        == round(result["http_events_per_second"] / result["floor_events_per_second"], 3)
        or abs(
            result["ratio"] - result["http_events_per_second"] / result["floor_events_per_second"]
        )
        < 0.01
    )
    held = result["sustained"][0]
    assert held["workers"] == 1
    assert held["stored"] > 0
    assert held["events_per_second"] > 0
    assert len(held["tenths_events_per_second"]) == 10
    assert held["consumer_max_lag_events"] >= 0
    assert "sustained" in done.stdout
    # Every consumer's lag: the procedure consumer's and the export target's the run made.
    assert set(held["consumers"]) == {
        "procedures",
        f"export:{held['consumer_setup']['export_target']}",
    }
    for lag in held["consumers"].values():
        assert lag["max_lag_events"] >= 0
        assert lag["drained"], held["consumers"]
    assert "  lag" in done.stdout
