"""``garrison stations tree``: the process tree of a station, against a live server."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.cli.helpers import Cli, assert_one_line_error, enroll
from tests.events.test_process_tree import CHILD, GRANDCHILD, LONER, ROOT, SEED


def _seeded(cli: Cli) -> int:
    """A new station with the seed's processes (event ids of its own: ids are global)."""
    agent, station_id = enroll(cli)
    items = [{**e, "id": uuid.uuid4().hex} for e in SEED]
    try:
        response = httpx.post(
            f"{cli.live.url}/api/events", content=json.dumps(items), headers=agent.headers()
        )
        assert response.status_code == 200, response.text
        assert response.json()["stored"] == len(SEED), response.text
    finally:
        agent.client.close()
    return station_id


def test_the_tree_is_printed_indented_and_as_json(cli: Cli) -> None:
    station_id = _seeded(cli)
    done = cli("stations", "tree", station_id)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("[100] /bin/bash `/bin/bash --run 100` user=alice")
    assert lines[0].endswith(f"running upid={ROOT}")
    assert lines[1].startswith("  [200] /usr/bin/make ")
    assert "exit=3" in lines[1]
    assert lines[2].startswith("    [300] /usr/bin/cc ")
    assert lines[3].startswith("[400] /usr/sbin/cron ")
    assert lines[4] == f"4 process(es) on station {station_id}"

    data = cli.json("stations", "tree", station_id, "--root", CHILD)
    assert data["roots"][0]["unique_pid"] == CHILD
    assert [c["unique_pid"] for c in data["roots"][0]["children"]] == [GRANDCHILD]

    cut = cli("stations", "tree", station_id, "--limit", "1")
    assert cut.returncode == 0, cut.stderr
    assert cut.stdout.splitlines()[-1].startswith(f"1 process(es) on station {station_id}; cut:")
    assert CHILD in cut.stdout  # the process of the newest event (its stop) is kept
    assert LONER not in cut.stdout


def test_bad_input_is_one_line(cli: Cli) -> None:
    assert "999999" in assert_one_line_error(cli("stations", "tree", 999_999), 1)
    station_id = _seeded(cli)
    assert "UniquePID" in assert_one_line_error(
        cli("stations", "tree", station_id, "--root", "not a pid!"), 1
    )
