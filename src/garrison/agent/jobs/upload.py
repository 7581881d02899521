"""A response job's upload (:mod:`garrison.agent.upload`), its failures as UPLOAD_FAILED."""

from __future__ import annotations

from garrison.agent import upload
from garrison.agent.context import Agent
from garrison.agent.errors import AgentError, JobError, RefusedError
from garrison.agent.jobs import codes
from garrison.agent.upload import Uploaded


def digest(fd: int, size: int) -> str:
    try:
        return upload.digest(fd, size)
    except AgentError as exc:
        raise JobError(exc.message, codes.FAILED) from None
    except OSError as exc:
        raise JobError(f"read failed: {exc.strerror or exc}", codes.FAILED) from None


def put(agent: Agent, fd: int, size: int, query: dict[str, str | int]) -> Uploaded:
    """Upload ``size`` bytes of ``fd``; UPLOAD_FAILED with the server's reason."""
    try:
        return upload.send(agent, fd, size, query)
    except RefusedError as exc:
        raise JobError(f"upload refused: {exc.message}", codes.UPLOAD_FAILED) from None
    except AgentError as exc:
        raise JobError(f"upload failed: {exc.message}", codes.UPLOAD_FAILED) from None
    except OSError as exc:
        raise JobError(f"upload failed: {exc.strerror or exc}", codes.UPLOAD_FAILED) from None
