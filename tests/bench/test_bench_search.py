"""The search scenario in its tiny size on SQLite: every kind of search ran and reported
positive latencies (no timing asserted), over the events the seeding tool wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import search

pytestmark = pytest.mark.slow


def test_search_scenario_reports_every_search(tmp_path: Path) -> None:
    result = search.run("tiny", tmp_path)
    assert result["details"]["stored_events"] == search.SIZES["tiny"]["events"]
    assert result["details"]["stored_terms"] > result["details"]["stored_events"]
    assert set(result["details"]["searches"]) == {
        "hash",
        "process",
        "host",
        "time range (1 h)",
        "hash in a time range (1 h)",
        "IOC sweep (20 hashes)",
    }
    for figure in result["figures"]:
        assert figure["value"] > 0, figure
