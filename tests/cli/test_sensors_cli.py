"""``garrison sensors policy show|set|unset|effective`` and ``garrison sensors status``
against a real server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.cli.helpers import Cli, assert_one_line_error
from tests.server.test_sensor_policy_api import GarrisonAgent


@pytest.fixture
def agent(cli: Cli) -> Iterator[GarrisonAgent]:
    """A station enrolled as a Garrison agent (the policy is theirs only)."""
    key = cli.json("keys", "create", "--uses", "1")["key"]
    made = GarrisonAgent(httpx.Client(base_url=cli.live.url))
    assert made.enroll(key).status_code == 200
    yield made
    made.client.close()


def test_policy_set_show_unset_effective(cli: Cli, agent: GarrisonAgent) -> None:
    cli.json("groups", "create", "cli-sensors")
    cli.json("groups", "add", "cli-sensors", agent.agent_id)

    shown = cli.json("sensors", "policy", "set", "ports=false", 'redact=["*PIN*"]')
    assert shown["settings"] == {"ports": False, "redact": ["*PIN*"]}
    # set keeps the keys not given.
    shown = cli.json("sensors", "policy", "set", "burst=99")
    assert shown["settings"] == {"ports": False, "burst": 99, "redact": ["*PIN*"]}
    group = cli.json(
        "sensors", "policy", "set", "--group", "cli-sensors", "--priority", "3", "ports=true"
    )
    assert (group["group"], group["priority"], group["settings"]) == (
        "cli-sensors",
        3,
        {"ports": True},
    )
    found = cli.json("sensors", "policy", "effective", agent.agent_id)
    assert found["sources"] == {
        "ports": "group:cli-sensors",
        "burst": "default",
        "redact": "default",
    }
    table = cli("sensors", "policy", "effective", agent.agent_id)
    assert table.returncode == 0, table.stderr
    assert "group:cli-sensors" in table.stdout

    assert cli.json("sensors", "policy", "unset", "burst")["settings"] == {
        "ports": False,
        "redact": ["*PIN*"],
    }
    assert cli.json("sensors", "policy", "unset", "--group", "cli-sensors")["deleted"] is True
    assert cli.json("sensors", "policy", "show", "--group", "cli-sensors")["settings"] == {}
    assert cli.json("sensors", "policy", "unset")["settings"] == {}

    refused = cli("sensors", "policy", "set", "rate_per_second=0")
    assert "rate_per_second" in assert_one_line_error(refused, 1)


def test_status_shows_the_latest_sensor_health(cli: Cli, agent: GarrisonAgent) -> None:
    empty = cli("sensors", "status", agent.agent_id)
    assert empty.returncode == 0
    assert "no sensor_health report" in empty.stdout
    data = {
        "time": time.time(),
        "count": 1,
        "sensor_0": "ports",
        "state_0": "failed",
        "reason_0": "needs root",
        "dropped_rate_limit_0": 4,
        "dropped_0": 4,
        "policy_error": "policy v refused: ports: must be true or false",
    }
    item = {"id": uuid.uuid4().hex, "type": "sensor_health", "data": data}
    sent = agent.client.post("/api/events", content=json.dumps([item]), headers=agent.headers())
    assert sent.status_code == 200, sent.text
    found = cli.json("sensors", "status", agent.agent_id)
    assert found["sensors"][0]["dropped_rate_limit"] == 4
    table = cli("sensors", "status", agent.agent_id)
    assert "needs root" in table.stdout
    assert "rate 4" in table.stdout
    assert "POLICY REFUSED" in table.stdout
