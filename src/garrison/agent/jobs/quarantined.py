"""ListQuarantine and RestoreQuarantined: the agent's quarantine (:mod:`garrison.agent.
quarantine`), as the local ``garrison-agent quarantine`` commands see it."""

from __future__ import annotations

from garrison.agent.context import Agent
from garrison.agent.errors import JobError, LocalError
from garrison.agent.jobs import codes, params
from garrison.agent.jobs.params import Reply
from garrison.agent.jobstore import Job

MAX_ITEMS = 50_000


def list_items(agent: Agent, job: Job) -> Reply:
    entries = agent.quarantine.entries()
    items = [
        {
            "id": e.id,
            "path": e.original_path,
            "sha256": e.sha256,
            "size": e.size,
            "quarantined_at": int(e.quarantined_at),
            "threat": e.threat,
        }
        for e in entries[:MAX_ITEMS]
    ]
    return Reply(
        f"{len(entries)} quarantined file(s)",
        {"items": items, "truncated": len(entries) > MAX_ITEMS},
    )


def restore(agent: Agent, job: Job) -> Reply:
    item = params.text(params.obj(job), "id", max_length=64)
    store = agent.quarantine
    if item not in {e.id for e in store.entries()}:
        raise JobError(f"no quarantined file with id {item!r}", codes.NOT_FOUND)
    try:
        entry = store.restore(item)
    except LocalError as exc:
        raise JobError(exc.message, codes.FAILED) from None
    return Reply(f"restored {entry.original_path}", {"id": entry.id, "path": entry.original_path})
