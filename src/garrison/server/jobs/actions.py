"""Administrative job actions: create and cancel, each one transaction.

A created job wakes its stations' long-polls through ``Signal.JOBS_QUEUED`` once it is
committed, whoever created it: the admin API, the CLI or a procedure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from garrison.server.audit.actor import Actor
from garrison.server.jobs import service as jobs
from garrison.server.store.effects import Signal, signal
from garrison.server.store.unit import Transactions


def create_job(
    db: Transactions,
    actor: Actor,
    job_type: str,
    priority: int,
    params: dict[str, Any],
    *,
    station_ids: Sequence[int] = (),
    group: str | None = None,
    target_limit: int | None = None,
) -> jobs.JobView:
    """Queue a job for stations and/or a group's members; ``target_limit`` bounds how many
    targets the returned view carries (a job may have 100,000)."""
    with db.transaction() as session:
        job, targeted = jobs.create(
            session, actor, job_type, priority, params, station_ids=station_ids, group=group
        )
        signal(session, Signal.JOBS_QUEUED, targeted)
        return jobs.views(session, [job], target_limit)[0]


def cancel_job(
    db: Transactions, actor: Actor, job_id: int, station_ids: Sequence[int] | None = None
) -> int:
    """Cancel the job for the given (or all) stations that have not downloaded it yet;
    returns how many were cancelled."""
    with db.transaction() as session:
        return jobs.cancel(session, actor, job_id, station_ids)
