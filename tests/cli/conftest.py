"""The CLI tests' fixtures: one ``garrison serve`` per test module (each test uses its own
names and stations, so the order of tests does not matter), a CLI pointed at it from an
empty working directory, and an enrolled station."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.helpers import Cli, enroll
from tests.live import LiveServer, start_server
from tests.support import ArmaditoAgent


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # The export tests write files in their own directories and send to 127.0.0.1, as an
    # operator allows with these settings.
    server = start_server(
        tmp_path_factory.mktemp("server") / "data",
        extra_env={
            "GARRISON_EXPORT_FILE_DIRS": str(tmp_path_factory.getbasetemp()),
            "GARRISON_EXPORT_ALLOW_LOCAL": "true",
        },
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cli(live: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    # An empty working directory: no ./garrison-data token file to fall back on by accident.
    return Cli(live, tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="module")
def station(cli: Cli) -> Iterator[tuple[ArmaditoAgent, int]]:
    agent, station_id = enroll(cli)
    yield agent, station_id
    agent.client.close()
