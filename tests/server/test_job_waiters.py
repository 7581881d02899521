"""JobWaiters' set of stations with queued jobs around its first load: a job created while
the node is still loading must not be left out (a check-in would then be told "no jobs")."""

from __future__ import annotations

import uuid as uuidlib

from garrison.server.audit.actor import SYSTEM
from garrison.server.jobs import service as jobs
from garrison.server.jobs.waiters import JobWaiters
from garrison.server.stations import service as stations
from garrison.server.stations.service import Identity
from garrison.server.store.engine import Database


def station(db: Database) -> int:
    with db.transaction() as session:
        made, _, _ = stations.enroll(session, Identity(uuid=str(uuidlib.uuid4()).upper()), None)
        return made.id


def job_for(db: Database, station_id: int) -> list[int]:
    with db.transaction() as session:
        _, targeted = jobs.create(
            session, SYSTEM, "Scan", 2, {"path": "/tmp"}, station_ids=[station_id]
        )
    return targeted


def test_before_the_first_load_every_station_may_have_jobs(db: Database) -> None:
    waiters = JobWaiters(db)
    assert waiters.may_have_jobs(station(db))


def test_a_mark_made_while_loading_survives_the_load(db: Database) -> None:
    waiters = JobWaiters(db)
    sid = station(db)
    # The admin API marks the station after its job commits; here the load's read has
    # (in effect) begun before that commit: the mark comes first, the job is not in the
    # database the load reads.
    waiters.mark_queued([sid])
    waiters._reload()
    assert waiters.may_have_jobs(sid)


def test_a_job_committed_after_the_load_is_found_by_the_next_read(db: Database) -> None:
    waiters = JobWaiters(db)
    quiet, busy = station(db), station(db)
    job_for(db, busy)
    waiters._reload()
    assert waiters.may_have_jobs(busy)
    assert not waiters.may_have_jobs(quiet)
    job_for(db, quiet)  # created on another node: no mark here
    assert waiters._new_targets() == [quiet]
    assert waiters.may_have_jobs(quiet)


def test_nothing_queued_only_forgets_a_station_no_job_came_for(db: Database) -> None:
    waiters = JobWaiters(db)
    sid = station(db)
    waiters._reload()
    waiters.mark_queued([sid])
    seen = waiters.version(sid)
    waiters.mark_queued([sid])  # a job arrived while the check-in read
    waiters.nothing_queued(sid, seen)
    assert waiters.may_have_jobs(sid)
    waiters.nothing_queued(sid, waiters.version(sid))
    assert not waiters.may_have_jobs(sid)
