"""GetFile (and the CollectFile hunt): the path rules, then the upload; the result names
the file the server now holds (``path``, ``sha256``, ``size``)."""

from __future__ import annotations

from typing import Any

from garrison.agent.context import Agent
from garrison.agent.jobs import filerules, params, upload
from garrison.agent.jobs.params import Reply
from garrison.agent.jobstore import Job

MAX_BYTES_CEILING = 1 << 40  # a sanity bound on the server's cap, not a policy
# A CollectFile hunt carries no cap of its own: the server's (413) still applies.
DEFAULT_MAX_BYTES = 1 << 30


def collect(agent: Agent, job_id: int, obj: dict[str, Any], default_cap: int | None) -> Reply:
    """``default_cap``: None when the job must give ``max_bytes`` (GetFile always does)."""
    path = params.absolute_path(obj)
    cap = params.integer(obj, "max_bytes", default_cap, minimum=0, maximum=MAX_BYTES_CEILING)
    with filerules.open_checked(path, agent.config.response.allowed_roots, cap) as (fd, found):
        sent = upload.put(agent, fd, found.st.st_size, {"job_id": job_id})
    return Reply(
        f"uploaded {found.path} ({sent.size} bytes, sha256 {sent.sha256})",
        {"path": found.path, "sha256": sent.sha256, "size": sent.size},
    )


def handle(agent: Agent, job: Job) -> Reply:
    return collect(agent, job.id, params.obj(job), None)
