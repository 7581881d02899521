from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from garrison.agent import config as configmod
from garrison.agent.errors import LocalError
from garrison.agent.schedule import CronSchedule


def test_avconfig_pairs_round_trip(tmp_path: Path) -> None:
    config = configmod.AgentConfig()
    pairs = {p["attr"]: p["value"] for p in configmod.avconfig_pairs(config)}
    assert pairs["scan:action"] == "quarantine"
    assert pairs["scan:exclude"] == "/proc;/sys;/dev;/run"
    assert pairs["on-access:enabled"] == "0"
    problems = configmod.apply_avconfig(
        config,
        [("scan:action", "delete"), ("scan:max_file_size", "1000"), ("spool:max_age_days", "7"),
         ("scan:archives", "0"), ("bogus", "1"), ("scan:action", "explode")],
    )  # fmt: skip
    assert len(problems) == 2
    assert (config.scan.action, config.scan.max_file_size) == ("delete", 1000)
    assert (config.spool.max_age_days, config.scan.archives) == (7, False)
    path = tmp_path / "agent.toml"
    configmod.save(path, config)
    assert path.stat().st_mode & 0o777 == 0o600
    assert configmod.load(path) == config


def test_scheduler_pairs() -> None:
    config = configmod.AgentConfig()
    problems = configmod.apply_scheduler(
        config,
        [("scheduler:task:Getjobs:freq", "*/2 * * * *"), ("scheduler:task:Nope:freq", "* * * * *"),
         ("scheduler:task:State:freq", "not cron")],
    )  # fmt: skip
    assert len(problems) == 2
    assert config.scheduler["Getjobs"] == "*/2 * * * *"
    attrs = {p["attr"] for p in configmod.scheduler_pairs(config)}
    assert "scheduler:task:Runjobs:freq" in attrs


def test_bad_config_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[scan]\naction = 'explode'\n")
    with pytest.raises(LocalError, match=r"scan\.action"):
        configmod.load(path)
    path.write_text("not toml [")
    with pytest.raises(LocalError, match="cannot read config"):
        configmod.load(path)


def test_cron_schedule() -> None:
    start = dt.datetime(2026, 1, 1, 12, 0, 30, tzinfo=dt.UTC).timestamp()
    schedule = CronSchedule({"Getjobs": "* * * * *", "State": "0 * * * *"}, start)
    assert schedule.due(start) == []
    assert schedule.next_time() == start + 30
    assert schedule.due(start + 30) == ["Getjobs"]
    assert schedule.due(start + 31) == []
    # late by many minutes: runs once, not once per missed minute
    hour = dt.datetime(2026, 1, 1, 13, 5, tzinfo=dt.UTC).timestamp()
    assert sorted(schedule.due(hour)) == ["Getjobs", "State"]
    assert schedule.due(hour) == []
