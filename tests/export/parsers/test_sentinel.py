"""Microsoft Sentinel's ESETPROTECT solution: ``Syslog | where ProcessName == "ERAServer"``,
then ``parse_json(SyslogMessage)`` and branches on exact ``event_type`` names; its connector
takes BSD syslog, facility user.  Its HIPS branch spells ``HIPSAggregated_Event`` (KQL's
``==`` is case-sensitive) while ESET sends ``HipsAggregated_Event``: Garrison sends ESET's,
so Sentinel treats Garrison's HIPS events exactly as it treats ESET's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.export.parsers import headers, samples
from tests.export.parsers.conftest import KINDS, Received

BRANCHES = {
    "Threat_Event",
    "FirewallAggregated_Event",
    "HIPSAggregated_Event",
    "Audit_Event",
    "EnterpriseInspectorAlert_Event",
    "BlockedFiles_Event",
    "FilteredWebsites_Event",
}
FACILITY_USER = 1


def sentinel(line: str) -> tuple[bool, dict[str, Any] | None, str | None]:
    """(selected by the ProcessName filter, the parsed JSON, the branch taken)."""
    header = headers.syslog(line)
    if header is None or header.program != "ERAServer" or header.facility != FACILITY_USER:
        return False, None, None
    try:
        # parse_json of a message that does not start with JSON (a BOM, text) gives no
        # object: every column it feeds is empty.
        parsed = json.loads(header.message)
    except ValueError:
        return True, None, None
    if not isinstance(parsed, dict):
        return True, None, None
    kind = parsed.get("event_type")
    return True, parsed, kind if kind in BRANCHES else None


@pytest.mark.parametrize("kind", KINDS)
def test_eset_lines(kind: str) -> None:
    for name, line in samples.lines(kind).items():
        selected, parsed, branch = sentinel(line)
        assert selected, name
        assert parsed is not None, name
        assert branch == (name if name in BRANCHES else None), name
    # A BOM makes the message something parse_json cannot read.
    assert sentinel(samples.rfc5424(samples.JSON["Threat_Event"], bom=True))[1] is None


def test_garrison_lines(received: Received) -> None:
    for kind in KINDS:
        taken: dict[str, str | None] = {}
        for line in received.of("eset-json", kind):
            selected, parsed, branch = sentinel(line)
            assert selected, line
            assert parsed is not None, line
            taken[parsed["event_type"]] = branch
        assert set(taken) == set(samples.SEVEN), kind
        for name in samples.SEVEN:  # the branch ESET's own line of that type takes
            assert taken[name] == sentinel(samples.lines(kind)[name])[2], name


def test_garrison_own_types_are_not_selected(received: Received) -> None:
    own = [line for line in received.lines["own"] if "garrison" in line.split(": ", 1)[0]]
    assert own, "the target asked for Garrison's own types"
    assert all(not sentinel(line)[0] for line in own)
