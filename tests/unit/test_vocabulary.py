"""The shared vocabulary: its values are the wire's, and every part of Garrison uses it."""

from __future__ import annotations

import json

import orjson
import pytest

from garrison.agent.jobs import HANDLERS
from garrison.common.catalogue import CATALOGUE
from garrison.common.vocabulary import (
    AgentKind,
    JobPriority,
    JobStatus,
    JobType,
    Role,
    Severity,
    is_severity,
    severity_rank,
    spoken,
)
from garrison.server.export.mapping import AGGREGATE_KEYS, DATE_KEYS, ESET_KEYS, MAPPERS
from garrison.server.users.service import role_allows


def test_values_are_the_wire_strings() -> None:
    # These strings are in the database, the admin API and the Armadito protocol.
    assert list(Severity) == ["Information", "Notice", "Warning", "Error", "Critical", "Fatal"]
    assert list(Role) == ["admin", "operator", "viewer"]
    assert list(JobType) == [
        "Scan", "UpdateSignatures", "IsolateNetwork", "RejoinNetwork", "SelfTest", "Uninstall",
        "KillProcess", "ListProcesses", "ListConnections", "ListServices", "ListSessions",
        "GetFile", "DeleteFile", "QuarantineFile", "ListQuarantine", "RestoreQuarantined",
        "RunScript", "Hunt", "UpgradeAgent",
    ]  # fmt: skip
    assert list(JobStatus) == [
        "queued", "sent", "downloaded", "successful", "failed", "cancelled",
    ]  # fmt: skip
    assert [(p.value, p.label) for p in JobPriority] == [
        (0, "low"), (1, "medium"), (2, "high"), (3, "urgent"),
    ]  # fmt: skip
    assert list(AgentKind) == ["armadito", "garrison"]
    member = {"role": Role.OPERATOR, "severity": Severity.FATAL, "priority": JobPriority.HIGH}
    plain = {"role": "operator", "severity": "Fatal", "priority": 2}
    assert json.dumps(member) == json.dumps(plain)
    assert orjson.dumps(member) == orjson.dumps(plain)
    assert f"{Severity.ERROR}" == "Error"
    assert str(JobPriority.URGENT) == "3"


def test_severity_rank_is_the_stored_order() -> None:
    assert [severity_rank(s) for s in Severity] == list(range(6))
    assert [Severity.of_rank(i) for i in range(6)] == list(Severity)
    assert Severity.CRITICAL.rank == 4
    with pytest.raises(ValueError, match="unknown severity 'critical'"):
        severity_rank("critical")
    assert is_severity("Notice")
    assert not is_severity("notice")
    assert not is_severity(3)


def test_roles_rank_viewer_operator_admin() -> None:
    assert role_allows("admin", Role.OPERATOR)
    assert role_allows("operator", Role.OPERATOR)
    assert not role_allows("viewer", Role.OPERATOR)
    assert not role_allows("root", Role.VIEWER)  # a role no longer known allows nothing


def test_agent_kinds_and_the_agent_handlers_agree() -> None:
    assert AgentKind.ARMADITO.job_types == {JobType.SCAN}
    # Garrison's agent runs every job type the server can create, and no other.
    assert set(HANDLERS) == AgentKind.GARRISON.job_types == set(JobType)


def test_spoken_lists() -> None:
    assert spoken(["a"]) == "a"
    assert spoken(JobStatus) == "queued, sent, downloaded, successful, failed or cancelled"


def test_eset_keys_come_from_the_catalogue() -> None:
    eset_types = {e.eset_type for e in CATALOGUE.values() if e.eset_type}
    # Every ESET type a catalogue event maps to has its keys, and each mapped event has a mapper.
    assert eset_types == set(ESET_KEYS)
    assert {n for n, e in CATALOGUE.items() if e.eset_type} >= set(MAPPERS)
    assert all(CATALOGUE[n].eset_type for n in MAPPERS)
    assert set(AGGREGATE_KEYS) == {"FirewallAggregated_Event", "HipsAggregated_Event"}
    assert AGGREGATE_KEYS["HipsAggregated_Event"] == (
        "application", "operation", "target", "action", "rule_name", "rule_id",
    )  # fmt: skip
    assert DATE_KEYS == ("firstseen",)
