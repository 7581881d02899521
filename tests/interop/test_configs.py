"""AVConfig and Scheduler: "store only differences" as seen through the wire and admin API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from garrison.server.configs.models import ConfigDifference
from tests.conftest import Server
from tests.interop.armadito import (
    AVCONFIG,
    SCHEDULER,
    WireAgent,
    avconfig_pairs,
    replace_once,
    scheduler_pairs,
)

NewAgent = Callable[..., WireAgent]

AV_BASELINE = {
    "on-access:enabled": "1",
    "on-access:mount-points": "/home",
    "on-demand:archives": "0",
}
SCHED_BASELINE = {
    "scheduler:task:Getjobs:freq": "* * * * *",
    "scheduler:task:Runjobs:freq": "*/5 * * * *",
}


def difference_rows(server: Server, kind: str) -> int:
    with server.db.reading() as session:
        count = session.scalar(
            select(func.count()).select_from(ConfigDifference).where(ConfigDifference.kind == kind)
        )
    return int(count or 0)


def config(server: Server, station_id: int, kind: str) -> dict[str, Any]:
    response = server.admin.get(f"/stations/{station_id}/configs/{kind}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_avconfig_reply_is_2xx(armadito: Server, new_agent: NewAgent) -> None:
    agent = new_agent()
    response = agent.avconfig()
    assert 200 <= response.status_code < 300
    assert json.loads(response.content)["status"] == "ok"


def test_avconfig_same_config_stores_no_differences(armadito: Server, new_agent: NewAgent) -> None:
    first, second = new_agent(), new_agent()
    assert first.avconfig().status_code == 200
    assert second.avconfig().status_code == 200
    assert difference_rows(armadito, "avconfig") == 0
    baseline = armadito.admin.get("/configs/avconfig/baseline").json()
    assert baseline == {"kind": "avconfig", "attributes": AV_BASELINE}
    for agent in (first, second):
        got = config(armadito, agent.agent_id, "avconfig")
        assert got["differences"] == {}
        assert got["effective"] == AV_BASELINE


def test_avconfig_one_differing_attribute_is_one_difference(
    armadito: Server, new_agent: NewAgent
) -> None:
    first, second, third = new_agent(), new_agent(), new_agent()
    first.avconfig()
    second.avconfig()
    differing = replace_once(
        AVCONFIG,
        '{"attr":"on-access:enabled","value":"1"}',
        '{"attr":"on-access:enabled","value":"0"}',
    )
    assert third.avconfig(differing).status_code == 200
    assert difference_rows(armadito, "avconfig") == 1
    got = config(armadito, third.agent_id, "avconfig")
    assert got["baseline"] == AV_BASELINE
    assert got["differences"] == {"on-access:enabled": "0"}
    assert got["effective"] == {**AV_BASELINE, "on-access:enabled": "0"}
    # The others still see the baseline.
    assert config(armadito, first.agent_id, "avconfig")["effective"] == AV_BASELINE


def test_avconfig_attribute_missing_on_an_agent_is_not_in_its_effective_config(
    armadito: Server, new_agent: NewAgent
) -> None:
    first, lacking = new_agent(), new_agent()
    first.avconfig()
    partial = avconfig_pairs([("on-access:enabled", "1"), ("on-access:mount-points", "/home")])
    assert lacking.avconfig(partial).status_code == 200
    got = config(armadito, lacking.agent_id, "avconfig")
    assert got["effective"] == {"on-access:enabled": "1", "on-access:mount-points": "/home"}
    assert "on-demand:archives" not in got["effective"]
    assert config(armadito, first.agent_id, "avconfig")["effective"] == AV_BASELINE


def test_attribute_added_to_the_baseline_later_is_not_in_earlier_agents_config(
    armadito: Server, new_agent: NewAgent
) -> None:
    early, later = new_agent(), new_agent()
    early.avconfig()
    extended = AVCONFIG[:-1] + ', {"attr":"on-access:notify","value":"1"}]'
    assert later.avconfig(extended).status_code == 200
    assert config(armadito, later.agent_id, "avconfig")["effective"] == {
        **AV_BASELINE,
        "on-access:notify": "1",
    }
    assert config(armadito, early.agent_id, "avconfig")["effective"] == AV_BASELINE


def test_avconfig_back_to_the_baseline_removes_the_difference(
    armadito: Server, new_agent: NewAgent
) -> None:
    first, second = new_agent(), new_agent()
    first.avconfig()
    second.avconfig(avconfig_pairs([*AV_BASELINE.items(), ("on-demand:archives", "1")]))
    assert config(armadito, second.agent_id, "avconfig")["differences"] == {
        "on-demand:archives": "1"
    }
    second.avconfig()
    assert difference_rows(armadito, "avconfig") == 0
    assert config(armadito, second.agent_id, "avconfig")["effective"] == AV_BASELINE


def test_scheduler_stores_only_differences(armadito: Server, new_agent: NewAgent) -> None:
    first, second, third, fourth = (new_agent() for _ in range(4))
    assert first.scheduler().status_code == 200
    assert second.scheduler().status_code == 200
    assert difference_rows(armadito, "scheduler") == 0
    changed = replace_once(SCHEDULER, '"value":"*/5 * * * *"', '"value":"*/10 * * * *"')
    assert third.scheduler(changed).status_code == 200
    assert difference_rows(armadito, "scheduler") == 1
    assert (
        fourth.scheduler(
            scheduler_pairs([("scheduler:task:Getjobs:freq", "* * * * *")])
        ).status_code
        == 200
    )
    assert config(armadito, first.agent_id, "scheduler")["effective"] == SCHED_BASELINE
    third_config = config(armadito, third.agent_id, "scheduler")
    assert third_config["name"] == "Cron"
    assert third_config["differences"] == {"scheduler:task:Runjobs:freq": "*/10 * * * *"}
    assert third_config["effective"] == {
        **SCHED_BASELINE,
        "scheduler:task:Runjobs:freq": "*/10 * * * *",
    }
    assert config(armadito, fourth.agent_id, "scheduler")["effective"] == {
        "scheduler:task:Getjobs:freq": "* * * * *"
    }
    # Scheduler and AVConfig baselines are separate.
    assert armadito.admin.get("/configs/avconfig/baseline").json()["attributes"] == {}


def test_config_not_reported_yet(armadito: Server, new_agent: NewAgent) -> None:
    agent = new_agent()
    got = config(armadito, agent.agent_id, "avconfig")
    assert (got["reported_at"], got["differences"], got["effective"]) == (None, {}, {})
