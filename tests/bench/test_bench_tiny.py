"""The whole benchmark suite in its tiny size, so it never rots.  No timing is asserted:
only that every scenario ran and reported positive figures, and that the results render."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = [
    "checkin",
    "fleet",
    "fleet-100k",
    "dispatch",
    "ingestion",
    "alerts",
    "export",
    "lua",
    "growth",
    "search",
    "sensors",
    "content",
    "onaccess",
    "console",
]

pytestmark = pytest.mark.slow


@pytest.mark.timeout(240)
# Every scenario at once saturates both cores for minutes: beside parallel workers it ran
# past its timeout, so it runs in the serial pass, alone.
@pytest.mark.serial
def test_every_scenario_reports_positive_figures_and_renders(tmp_path: Path) -> None:
    out, docs = tmp_path / "latest.json", tmp_path / "BENCHMARKS.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--size", "tiny", "--out", str(out), "--docs", str(docs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=210,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())
    assert results["size"] == "tiny"
    assert results["machine"]["cores"] >= 1
    assert results["machine"]["python"]
    assert list(results["scenarios"]) == SCENARIOS
    for name, scenario in results["scenarios"].items():
        assert "error" not in scenario, scenario.get("error")
        if name in ("sensors", "onaccess") and "skipped" in scenario["details"]:
            continue  # not root, or no process connector: said in the scenario's note
        assert scenario["figures"], name
        for figure in scenario["figures"]:
            # An error rate may be zero; every other figure is a measured quantity.
            if figure["name"] != "error rate" and not figure["name"].endswith(
                ("counted drops", "uncounted losses")
            ):
                assert figure["value"] > 0, (name, figure)
            if "floor" in figure:
                assert figure["floor"] > 0, (name, figure)
                assert figure["ratio"] > 0, (name, figure)
        for target in scenario["targets"]:
            assert target["met"] in (True, False), (name, target)
    # The floors the issue names are all there.
    floors = {f.get("floor_name") for s in results["scenarios"].values() for f in s["figures"]}
    assert {"HTTP floor", "raw insert", "socket send", "empty sandboxed call"} <= floors
    fleet = results["scenarios"]["fleet"]
    assert fleet["details"]["counts"]["checkins"] > 0
    assert fleet["details"]["errors"] == {}
    assert fleet["details"]["counts"]["events_stored"] > 0  # the telemetry senders
    dispatch = results["scenarios"]["dispatch"]
    assert dispatch["details"]["jobs_measured"] > 0
    growth = results["scenarios"]["growth"]
    paired = growth["details"]["paired_ingest_events_per_second"]
    assert [len(rates) for rates in paired.values()] == [2, 2]  # two levels, alternating
    assert "paired rounds" in growth["targets"][0]["target"]
    assert "check-ins/s" in done.stdout  # the printed table

    text = docs.read_text()
    assert text.startswith("# Benchmarks")
    assert "## Machine" in text
    assert "## Targets" in text
    for name in SCENARIOS:
        assert f"Scenario `{name}`" in text
    assert results["machine"]["cpu_model"] in text

    # Re-rendering from the JSON alone works too (and writes only where it is told).
    again = tmp_path / "again.md"
    rendered = subprocess.run(
        [sys.executable, "-m", "bench", "--render-only", "--out", str(out), "--docs", str(again)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert again.read_text() == text

    # Re-measuring one scenario keeps the others, each with the date it was measured on.
    before = {name: s["date"] for name, s in results["scenarios"].items()}
    command = [sys.executable, "-m", "bench", "--size", "tiny", "--only", "lua"]
    only = subprocess.run(
        [*command, "--out", str(out), "--docs", str(docs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert only.returncode == 0, only.stderr[-4000:]
    merged = json.loads(out.read_text())
    assert list(merged["scenarios"]) == SCENARIOS
    assert merged["scenarios"]["growth"] == results["scenarios"]["growth"]
    assert merged["scenarios"]["lua"]["date"] == merged["machine"]["date"]
    assert {n: s["date"] for n, s in merged["scenarios"].items() if n != "lua"} == {
        n: d for n, d in before.items() if n != "lua"
    }
