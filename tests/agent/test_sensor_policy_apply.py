"""The agent applies the server's sensor policy without a restart: only the sensors whose
settings changed are replaced; a malformed policy is refused with its reason reported and
the previous one stays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from garrison.agent.config import SensorsConfig
from garrison.agent.sensors.base import Sensor, SensorState, Sink
from garrison.agent.sensors.emitter import Emitter
from garrison.agent.sensors.exclusions import Exclusions
from garrison.agent.sensors.hashes import HashCache
from garrison.agent.sensors.runner import LOCAL_OFF, POLICY_OFF, Factory, SensorRunner
from garrison.agent.spool import Spool
from garrison.common.catalogue import CATALOGUE, validate
from garrison.common.sensor_policy import version

NAMES = ("process", "file", "ports", "module")


class Fake(Sensor):
    made: list[Fake] = []

    def __init__(self, name: str, config: SensorsConfig) -> None:
        super().__init__()
        self.name = name
        self.config = config
        self.starts = 0
        self.stops = 0
        Fake.made.append(self)

    def _start(self, sink: Sink) -> None:
        self.starts += 1

    def _stop(self) -> None:
        self.stops += 1


def _factory(name: str) -> Factory:
    return lambda cfg, _hashes: Fake(name, cfg)


@pytest.fixture
def runner(tmp_path: Path) -> Any:
    Fake.made = []
    spool = Spool(tmp_path / "spool.db")
    sent: list[dict[str, Any]] = []
    made = SensorRunner(
        SensorsConfig(terminal=False),
        spool,
        lambda kind, data, _id: sent.append(data),
        factories={name: _factory(name) for name in NAMES},
    )
    made.sent = sent  # type: ignore[attr-defined]
    made.start()
    yield made
    made.stop()
    spool.close()


def by_name(runner: SensorRunner) -> dict[str, Sensor]:
    return {sensor.name: sensor for sensor in runner.sensors}


def test_disabling_one_sensor_replaces_only_it(runner: SensorRunner) -> None:
    before = by_name(runner)
    policy = {"ports": False}
    assert runner.apply_policy(policy, version(policy))
    after = by_name(runner)
    assert after["ports"].state == SensorState.DISABLED
    assert after["ports"].reason == POLICY_OFF
    assert before["ports"].state == SensorState.STOPPED  # the old one was stopped
    for name in ("process", "file", "module"):
        assert after[name] is before[name]  # untouched, still running
        assert after[name].state == SensorState.RUNNING
    health = runner.sent[-1]  # type: ignore[attr-defined]
    assert health["policy_version"] == version(policy)
    assert "policy_error" not in health
    assert validate(CATALOGUE["sensor_health"], health)


def test_a_changed_setting_restarts_the_sensor_and_its_dependents(runner: SensorRunner) -> None:
    before = by_name(runner)
    before["process"].counters.add("produced", 7)
    policy = {"redact": ["*X*"], "file_paths": ["/srv"]}
    assert runner.apply_policy(policy, version(policy))
    after = by_name(runner)
    assert after["ports"] is before["ports"]
    for name in ("process", "module", "file"):  # module is hooked to process
        assert after[name] is not before[name]
        assert after[name].state == SensorState.RUNNING
    assert runner.config.redact == ["*X*"]
    assert after["file"].config.file_paths == ["/srv"]  # type: ignore[attr-defined]
    # Counters are since the agent started: they carry over to the new sensor.
    assert after["process"].counters.produced == 7


def test_an_empty_policy_goes_back_to_agent_toml(runner: SensorRunner) -> None:
    assert runner.apply_policy({"ports": False}, "v1")
    assert runner.apply_policy({}, version({}))
    assert by_name(runner)["ports"].state == SensorState.RUNNING
    assert runner.config == runner.local


def test_a_sensor_off_in_agent_toml_says_so_and_policy_can_turn_it_on(
    tmp_path: Path,
) -> None:
    Fake.made = []
    spool = Spool(tmp_path / "spool.db")
    made = SensorRunner(
        SensorsConfig(ports=False), spool, lambda *_: None, factories={"ports": _factory("ports")}
    )
    made.start()
    try:
        assert made.sensors[0].reason == LOCAL_OFF
        assert made.apply_policy({"ports": True}, "v")
        assert made.sensors[0].state == SensorState.RUNNING
    finally:
        made.stop()
        spool.close()


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        ({"ports": "no"}, "ports: must be true or false"),
        ({"os_log_journalctl": "/tmp/x"}, "os_log_journalctl: unknown key"),
        ({"rate_per_second": -3}, "rate_per_second: must be between"),
        ("not a table", "policy: must be an object"),
    ],
)
def test_a_malformed_policy_is_refused_and_the_previous_stays(
    runner: SensorRunner, policy: Any, reason: str
) -> None:
    good = {"ports": False}
    assert runner.apply_policy(good, "good")
    sensors = by_name(runner)
    assert not runner.apply_policy(policy, "bad")
    assert by_name(runner) == sensors  # nothing replaced
    assert runner.policy == good
    assert runner.policy_version == "good"
    assert sensors["ports"].state == SensorState.DISABLED
    health = runner.sent[-1]  # type: ignore[attr-defined]
    assert health["policy_version"] == "good"
    assert health["policy_error"].startswith("policy bad refused: ")
    assert reason in health["policy_error"]
    assert validate(CATALOGUE["sensor_health"], health)
    # The next good policy clears the error.
    assert runner.apply_policy({}, "empty")
    assert "policy_error" not in runner.sent[-1]  # type: ignore[attr-defined]


def test_rate_limits_and_exclusions_reach_the_emitter(runner: SensorRunner) -> None:
    policy = {"rate_per_second": 3, "burst": 4, "exclude_hashes": ["b" * 64]}
    assert runner.apply_policy(policy, "v")
    assert (runner.emitter.rate, runner.emitter.burst) == (3, 4)
    assert runner.emitter.exclusions.excludes("file_created", {"sha256": "b" * 64})


def test_excluded_events_are_counted_not_queued(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    emitter = Emitter(spool, 100, 100, 1.0)
    emitter.exclusions = Exclusions(["sleep*", "/opt/noisy/*"], ["c" * 32])
    sensor = Fake("process", SensorsConfig())
    data: list[dict[str, Any]] = [
        {"file_name": "sleep", "full_name": "/bin/sleep"},
        {"file_name": "tool", "full_name": "/opt/noisy/tool"},
        {"file_name": "ls", "md5": "c" * 32},
        {"file_name": "ls", "full_name": "/bin/ls"},
    ]
    for index, item in enumerate(data):
        assert emitter.submit(sensor, "process_started", item, f"id{index}", 1.0)
    assert sensor.counters.excluded == 3
    assert emitter.pending() == 1
    # A process-name glob applies to process events only.
    emitter.submit(sensor, "file_created", {"file_name": "sleep"}, "f", 1.0)
    assert emitter.pending() == 2
    spool.close()


def test_hash_cache_is_not_rebuilt_by_a_policy(runner: SensorRunner) -> None:
    cache: HashCache = runner.hashes
    assert runner.apply_policy({"file": False}, "v")
    assert runner.hashes is cache
