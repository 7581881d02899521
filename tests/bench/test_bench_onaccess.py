"""The ``onaccess`` scenario in its tiny size: the hooked execs are really decided (one
decision per distinct file, the rest from the verdict cache), none fails open or is denied,
and both targets are evaluated.  No timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import onaccess

pytestmark = pytest.mark.slow


@pytest.mark.timeout(120)
def test_the_tiny_onaccess_scenario_measures_hooked_and_floor_execs(tmp_path: Path) -> None:
    result = onaccess.run("tiny", tmp_path)
    if "skipped" in result["details"]:
        pytest.skip(result["details"]["skipped"])
    details = result["details"]
    size = onaccess.SIZES["tiny"]
    assert details["decisions"] == size["cached"] + size["first"]
    assert details["cached_answers"] == size["cached"] - 1  # the first exec was decided
    assert details["fail_open"] == 0
    assert details["denied"] == 0
    for figure in result["figures"]:
        assert figure["value"] > 0
        assert figure["floor"] > 0
    assert [t["met"] in (True, False) for t in result["targets"]] == [True, True]
