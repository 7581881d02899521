"""The hunt watcher keeps Getjobs cheap: with no active hunt no station is sent down the
slow path; with one, each station is checked once per generation, and again after its
groups change, a hunt is created or stopped.  And a station's check finds a hunt once."""

from __future__ import annotations

import uuid as uuidlib

from garrison.common.vocabulary import AgentKind
from garrison.server.audit.actor import SYSTEM
from garrison.server.hunts import actions
from garrison.server.hunts import service as hunts
from garrison.server.hunts.watch import HuntWatch
from garrison.server.stations import service as stations
from garrison.server.stations.service import Identity
from garrison.server.store.engine import Database

QUESTION = {"type": "FindProcess", "name": "sshd"}


def station(db: Database, os_name: str = "linux") -> int:
    identity = Identity(
        uuid=str(uuidlib.uuid4()).upper(), os_name=os_name, agent_kind=AgentKind.GARRISON
    )
    with db.transaction() as session:
        made, _, _ = stations.enroll(session, identity, None)
        return made.id


def test_no_active_hunt_keeps_every_station_on_the_fast_path(db: Database) -> None:
    watch = HuntWatch(db)
    sid = station(db)
    assert watch.needs_check(sid)  # not loaded yet: the slow path looks
    watch.reload()
    assert not watch.needs_check(sid)
    assert not watch.needs_check(sid + 1000)


def test_each_station_is_checked_once_per_generation(db: Database) -> None:
    watch = HuntWatch(db)
    sid = station(db)
    hunt = actions.create_hunt(db, SYSTEM, QUESTION, {"all": True}, 600)
    watch.changed()
    assert watch.needs_check(sid)
    generation, active = watch.snapshot()
    assert [h.hunt_id for h in active] == [hunt.id]
    watch.checked(sid, generation)
    assert not watch.needs_check(sid)
    watch.reload()  # nothing changed: still checked
    assert not watch.needs_check(sid)
    watch.groups_changed(frozenset({sid}))
    assert watch.needs_check(sid)
    watch.checked(sid, generation)
    actions.stop_hunt(db, SYSTEM, hunt.id)
    watch.changed()
    assert not watch.needs_check(sid)  # no active hunt left


def test_a_station_gets_a_hunt_once_and_only_when_it_matches(db: Database) -> None:
    linux, windows = station(db), station(db, os_name="Windows")
    hunt = actions.create_hunt(db, SYSTEM, QUESTION, {"os": "LINUX"}, 600)
    with db.reading() as session:
        active = hunts.active(session)
        # Both were enrolled before: the hunt was queued for the Linux one at creation.
        assert hunts.missing(session, linux, active) == []
        assert hunts.missing(session, windows, active) == []
    late = station(db)
    with db.transaction() as session:
        assert hunts.materialise(session, late, active) == [hunt.job_id]
    with db.transaction() as session:
        assert hunts.materialise(session, late, active) == []
