"""The sensor policy's rules (garrison.common.sensor_policy) and the server's merge of a
station's policies (default, groups by priority then name)."""

from __future__ import annotations

from typing import Any

import pytest

from garrison.agent.config import SensorsConfig
from garrison.common import sensor_policy as rules
from garrison.server.errors import InvalidInputError
from garrison.server.sensors.service import Layer, checked, merge

SHA = "a" * 64


def test_a_valid_policy_is_normalised() -> None:
    policy = {
        "exclude_hashes": [SHA.upper(), SHA, "b" * 32],
        "ports": False,
        "rate_per_second": 500.0,
        "file_paths": ["/srv", "/srv"],
        "health_interval": 5,
    }
    assert rules.validate(policy) == {
        "ports": False,
        "rate_per_second": 500,
        "file_paths": ["/srv"],
        "exclude_hashes": [SHA, "b" * 32],
        "health_interval": 5.0,
    }


@pytest.mark.parametrize(
    ("policy", "key", "words"),
    [
        ({"prots": False}, "prots", "unknown key"),
        ({"os_log_journalctl": "/tmp/evil"}, "os_log_journalctl", "unknown key"),
        ({"ports": "false"}, "ports", "true or false"),
        ({"ports": 0}, "ports", "true or false"),
        ({"rate_per_second": 0}, "rate_per_second", "between"),
        ({"rate_per_second": 10**9}, "rate_per_second", "between"),
        ({"rate_per_second": 1.5}, "rate_per_second", "integer"),
        ({"rate_per_second": True}, "rate_per_second", "number"),
        ({"rate_per_second": "100"}, "rate_per_second", "number"),
        ({"health_interval": float("nan")}, "health_interval", "finite"),
        ({"health_interval": 0.1}, "health_interval", "between"),
        ({"file_paths": "/tmp"}, "file_paths", "list"),
        ({"file_paths": ["tmp"]}, "file_paths", "absolute"),
        ({"file_paths": [1]}, "file_paths", "strings"),
        ({"redact": [""]}, "redact", "characters"),
        ({"redact": ["A\x00B"]}, "redact", "NUL"),
        ({"redact": ["x"] * (rules.MAX_LIST + 1)}, "redact", "at most"),
        ({"exclude_hashes": ["not-a-hash"]}, "exclude_hashes", "MD5 or SHA-256"),
        ([], "policy", "object"),
    ],
)
def test_broken_values_are_refused_naming_the_key(policy: Any, key: str, words: str) -> None:
    with pytest.raises(rules.PolicyError) as caught:
        rules.validate(policy)
    assert caught.value.key == key
    assert words in caught.value.message


def test_the_server_names_the_field_under_settings() -> None:
    with pytest.raises(InvalidInputError) as caught:
        checked({"burst": -1})
    assert caught.value.field == "settings.burst"


def test_every_policy_key_is_a_sensors_key_of_the_agent() -> None:
    """A key the agent does not know could never be applied."""
    assert set(rules.KEYS) <= set(SensorsConfig.model_fields)
    # And the agent's own defaults are valid policy values.
    defaults = SensorsConfig().model_dump()
    rules.validate({key: defaults[key] for key in rules.KEYS})


def test_version_is_the_same_for_the_same_policy() -> None:
    assert rules.version({"a": 1, "b": [1]}) == rules.version({"b": [1], "a": 1})
    assert rules.version({"a": 1}) != rules.version({"a": 2})


def test_merge_groups_by_priority_then_name_then_the_default() -> None:
    default = Layer("default", 0, {"ports": True, "file": True, "burst": 5})
    groups = [
        Layer("group:zeta", 0, {"ports": False, "burst": 9}),
        Layer("group:alpha", 0, {"ports": True}),
        Layer("group:low", -5, {"file": False, "burst": 1}),
        Layer("group:high", 10, {"terminal": False}),
    ]
    found = merge(default, groups)
    assert found.settings == {"file": False, "ports": True, "terminal": False, "burst": 9}
    assert found.sources == {
        "file": "group:low",
        "ports": "group:alpha",
        "terminal": "group:high",
        "burst": "group:zeta",
    }
    assert found.layers == ["group:high", "group:alpha", "group:zeta", "group:low", "default"]
    assert found.version == rules.version(found.settings)


def test_no_policy_is_an_empty_one() -> None:
    found = merge(None, [])
    assert found.settings == {}
    assert found.sources == {}
    assert found.layers == []
