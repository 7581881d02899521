"""The ``console`` scenario in its tiny size, so it never rots (no timing is asserted): the
console's pages and the admin API's list are each measured on the same server."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import console

pytestmark = pytest.mark.slow


def test_the_tiny_console_scenario_measures_pages_and_the_admin_list(tmp_path: Path) -> None:
    result = console.run("tiny", tmp_path)
    names = [f["name"] for f in result["figures"]]
    assert "console dashboard p99" in names
    assert "console first stations page p99" in names
    assert "admin API GET /admin/v1/stations p99" in names
    assert all(f["value"] > 0 for f in result["figures"])
    assert result["details"]["stations"] == console.SIZES["tiny"]["stations"]
    assert [t["met"] in (True, False) for t in result["targets"]] == [True, True]
