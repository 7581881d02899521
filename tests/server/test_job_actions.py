"""jobs.actions.create_job, the one job creation every edge uses: its JOBS_QUEUED signal
fires once its rows are committed, also when it joins a transaction already open (a
procedure's), and never for a transaction that rolls back."""

from __future__ import annotations

import uuid as uuidlib

import pytest

from garrison.server.audit.actor import SYSTEM
from garrison.server.jobs import actions
from garrison.server.stations import service as stations
from garrison.server.stations.service import Identity
from garrison.server.store.effects import Signal
from garrison.server.store.engine import Database
from garrison.server.store.unit import Joined


def station(db: Database) -> int:
    with db.transaction() as session:
        made, _, _ = stations.enroll(session, Identity(uuid=str(uuidlib.uuid4()).upper()), None)
        return made.id


def signalled(db: Database) -> list[frozenset[int]]:
    seen: list[frozenset[int]] = []
    db.hooks.subscribe(Signal.JOBS_QUEUED, seen.append)
    return seen


def test_its_own_transaction_signals_the_targets_after_commit(db: Database) -> None:
    sid = station(db)
    seen = signalled(db)
    view = actions.create_job(db, SYSTEM, "Scan", 2, {"path": "/tmp"}, station_ids=[sid])
    assert seen == [frozenset({sid})]
    assert view.status_counts == {"queued": 1}
    assert [t.station_id for t in view.targets] == [sid]


def test_a_joined_transaction_signals_only_when_the_outer_one_commits(db: Database) -> None:
    sid = station(db)
    seen = signalled(db)
    with db.transaction() as session:
        actions.create_job(
            Joined(session), SYSTEM, "Scan", 2, {"path": "/tmp"}, station_ids=[sid], target_limit=0
        )
        assert seen == []  # nothing is committed yet
    assert seen == [frozenset({sid})]


def test_a_rolled_back_transaction_signals_nothing(db: Database) -> None:
    sid = station(db)
    seen = signalled(db)
    with pytest.raises(RuntimeError), db.transaction() as session:  # noqa: PT012
        actions.create_job(Joined(session), SYSTEM, "Scan", 2, {"path": "/tmp"}, station_ids=[sid])
        raise RuntimeError("the outer unit of work failed")
    assert seen == []
