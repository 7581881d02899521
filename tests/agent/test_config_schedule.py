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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[scan]\naction = 'explode'\n", "scan.action: action must be one of none, quarantine"),
        ("[scan]\nactoin = 'none'\n", "scan.actoin: unknown key"),
        ("scan = 3\n", "scan: must be a table"),
        ("[spool]\nmax_bytes = -1\n", "spool.max_bytes: must not be negative"),
        ("[daemon]\nlong_poll = 'soon'\n", "daemon.long_poll: not an integer: 'soon'"),
        ("[scan]\narchives = 'maybe'\n", "scan.archives: not a boolean: 'maybe'"),
        ("[server]\nurl = 8\n", "server.url: must be a string, not int"),
        ("[scheduler]\nNope = '* * * * *'\n", "scheduler: unknown task 'Nope'"),
        ("[scheduler]\nState = 'hourly'\n", "scheduler: not a 5-field cron expression"),
    ],
)
def test_config_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(LocalError) as caught:
        configmod.load(path)
    assert str(caught.value).startswith(f"config {path}: {message}")
    assert "\n" not in str(caught.value)


def test_config_file_values_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        "[server]\nurl = 'https://gs.example'\n[scan]\naction = 'Report-Only'\n"
        "exclude = '/a;/b'\nprogress_interval = -2\narchives = 'off'\n"
        "[scheduler]\nState = '*/2  * * * *'\n[later]\nnote = 'kept out'\n"
    )
    config = configmod.load(path)
    assert config.server.url == "https://gs.example"
    assert (config.scan.action, config.scan.exclude) == ("none", ["/a", "/b"])
    assert (config.scan.progress_interval, config.scan.archives) == (2.0, False)
    assert config.scan.paths == ["/home", "/tmp"]  # not given: the default
    # A schedule names some tasks; the others keep their defaults.
    assert config.scheduler == {**configmod.DEFAULT_SCHEDULE, "State": "*/2 * * * *"}


def test_a_bad_pushed_value_keeps_the_old_one() -> None:
    config = configmod.AgentConfig()
    problems = configmod.apply_avconfig(
        config, [("scan:max_file_size", "-5"), ("daemon:long_poll", "x"), ("scan:yara", "no")]
    )
    assert problems == [
        "scan:max_file_size: must not be negative",
        "daemon:long_poll: not an integer: 'x'",
    ]
    assert (config.scan.max_file_size, config.daemon.long_poll) == (100 * configmod.MIB, 30)
    assert config.scan.yara is False
    assert list(configmod.AVCONFIG_ATTRS) == [
        "scan:action", "scan:exclude", "scan:paths", "scan:max_file_size", "scan:archives",
        "scan:archive_max_size", "scan:yara", "scan:clamav", "scan:progress_interval",
        "spool:max_age_days", "spool:max_bytes", "daemon:long_poll", "daemon:max_db_age_days",
        "response:allowed_roots", "response:upload_samples",
        "on-access:enabled", "on-access:paths", "on-access:action", "on-access:blocking",
        "on-access:exec_scope", "on-access:deadline", "on-access:max_file_size",
        "on-access:verdict_cache",
    ]  # fmt: skip
