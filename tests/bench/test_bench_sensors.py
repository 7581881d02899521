"""The ``sensors`` scenario in its tiny size: it measures both sides (floor and agent) at
each rate, matches the events to the generator's processes and accounts for every missing
one.  No timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import sensors

pytestmark = pytest.mark.slow


@pytest.mark.timeout(120)
def test_the_tiny_sensors_scenario_measures_floor_and_agent(tmp_path: Path) -> None:
    result = sensors.run("tiny", tmp_path)
    if "skipped" in result["details"]:
        pytest.skip(result["details"]["skipped"])
    rows = result["raw"]["execs"]
    assert [row["rate"] for row in rows] == sensors.SIZES["tiny"]["rates"]
    for row in rows:
        for side in ("floor", "agent"):
            measured = row[side]
            assert measured["generated"] > 0
            assert measured["achieved_rate"] > 0
            assert measured["cpu_seconds"] > 0
            assert measured["started"] > 0
            # Every event the side did not report is a counted drop.
            assert measured["uncounted"] == 0, measured
        agent = row["agent"]
        assert agent["rss_peak_mib"] > 0
        assert agent["spool_events"] >= agent["started"] + agent["stopped"]
        assert agent["spool_body_bytes_per_event"] > 0
    names = [t["target"] for t in result["targets"]]
    assert any("capture" in n for n in names)
    assert any("counted" in n for n in names)
    assert any("at 1,000 events/s (500 execs/s)" in n for n in names)  # the rate
    for t in result["targets"]:
        assert t["met"] in (True, False), t
    files = result["raw"]["files"]
    if files is not None:
        assert files["agent"]["created"] > 0
        assert files["agent"]["uncounted"] == 0, files["agent"]
