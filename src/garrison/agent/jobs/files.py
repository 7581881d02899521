"""DeleteFile and QuarantineFile: the path rules of :mod:`.filerules`, then the act, on the
file whose hash the result reports (a file swapped in between is left alone)."""

from __future__ import annotations

import os

from garrison.agent.context import Agent
from garrison.agent.errors import JobError, LocalError
from garrison.agent.jobs import codes, filerules, params, upload
from garrison.agent.jobs.params import Reply
from garrison.agent.jobstore import Job

# Quarantine holds the file in memory while it defangs it: a bound, not a policy.
MAX_QUARANTINE = 1 << 30


def delete(agent: Agent, job: Job) -> Reply:
    asked = params.absolute_path(params.obj(job))
    with filerules.open_checked(asked, agent.config.response.allowed_roots) as (fd, found):
        sha = upload.digest(fd, found.st.st_size)
        try:
            now = os.lstat(found.path)
        except OSError as exc:
            raise JobError(f"{asked}: {exc.strerror or exc}", codes.NOT_FOUND) from None
        if (now.st_dev, now.st_ino) != (found.st.st_dev, found.st.st_ino):
            raise JobError(f"{asked} was replaced while being deleted; left alone", codes.REFUSED)
        try:
            os.unlink(found.path)
        except OSError as exc:
            raise JobError(f"cannot delete {found.path}: {exc.strerror or exc}",
                           codes.REFUSED) from None  # fmt: skip
    return Reply(f"deleted {found.path} (sha256 {sha})",
                 {"path": found.path, "sha256": sha, "deleted": True})  # fmt: skip


def quarantine(agent: Agent, job: Job) -> Reply:
    asked = params.absolute_path(params.obj(job))
    with filerules.open_checked(asked, agent.config.response.allowed_roots, MAX_QUARANTINE) as (
        fd,
        found,
    ):
        sha = upload.digest(fd, found.st.st_size)
    try:
        entry = agent.quarantine.add(found.path, f"response job {job.id}", expected_sha256=sha)
    except LocalError as exc:
        raise JobError(exc.message, codes.FAILED) from None
    return Reply(
        f"quarantined {found.path} as {entry.id}",
        {"path": found.path, "sha256": entry.sha256, "id": entry.id},
    )
