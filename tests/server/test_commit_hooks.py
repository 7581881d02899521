"""After-commit effects: run once per transaction after a commit, never after a rollback."""

from __future__ import annotations

import pytest

from garrison.server.store.effects import Signal, signal
from garrison.server.store.engine import Database


def test_effects_run_after_commit_with_merged_ids(db: Database) -> None:
    seen: list[frozenset[int]] = []
    db.hooks.subscribe(Signal.JOBS_QUEUED, seen.append)
    with db.transaction() as session:
        signal(session, Signal.JOBS_QUEUED, [1, 2])
        signal(session, Signal.JOBS_QUEUED, [2, 3])
        assert seen == []  # not before the commit
    assert seen == [frozenset({1, 2, 3})]


def test_no_effect_after_a_rollback(db: Database) -> None:
    seen: list[frozenset[int]] = []
    db.hooks.subscribe(Signal.EVENTS_APPENDED, seen.append)

    def failing_unit_of_work() -> None:
        with db.transaction() as session:
            signal(session, Signal.EVENTS_APPENDED)
            raise RuntimeError("the unit of work failed")

    with pytest.raises(RuntimeError, match="the unit of work failed"):
        failing_unit_of_work()
    with db.transaction():
        pass
    assert seen == []


def test_a_failing_subscriber_does_not_stop_the_others(db: Database) -> None:
    seen: list[frozenset[int]] = []

    def broken(_ids: frozenset[int]) -> None:
        raise ValueError("subscriber bug")

    db.hooks.subscribe(Signal.STATION_CREDENTIALS_REVOKED, broken)
    db.hooks.subscribe(Signal.STATION_CREDENTIALS_REVOKED, seen.append)
    with db.transaction() as session:
        signal(session, Signal.STATION_CREDENTIALS_REVOKED, [7])
    assert seen == [frozenset({7})]
