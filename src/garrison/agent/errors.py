"""Typed agent errors, each carrying the exit code the command line turns it into."""

from __future__ import annotations

from typing import Any


class ExitCode:
    """Exit codes a script can rely on (also listed in docs/agent.md)."""

    OK = 0
    INTERNAL = 1  # unexpected error (a bug): one line, details with GARRISON_AGENT_DEBUG=1
    USAGE = 2  # bad command line
    NOT_ENROLLED = 3  # run the Enrollment task first
    UNREACHABLE = 4  # server unreachable; what had to be sent stays queued
    REFUSED = 5  # the server refused the request (wrong key, 401/403, other 4xx)
    SERVER_ERROR = 6  # the server answered 5xx or something that is not JSON
    JOB_FAILED = 7  # Runjobs: at least one job failed
    THREATS_FOUND = 8  # Scan run by hand found malware
    LOCAL_ERROR = 9  # local problem: state dir, config file, quarantine entry, nft


class AgentError(Exception):
    exit_code = ExitCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageProblem(AgentError):
    exit_code = ExitCode.USAGE


class NotEnrolledError(AgentError):
    exit_code = ExitCode.NOT_ENROLLED


class UnreachableError(AgentError):
    exit_code = ExitCode.UNREACHABLE


class RefusedError(AgentError):
    exit_code = ExitCode.REFUSED

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ServerError(AgentError):
    exit_code = ExitCode.SERVER_ERROR

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class BusyError(ServerError):
    """The server is too busy or its database away (429, 503): nothing was done; try again
    after ``retry_after`` seconds when it said so (its ``Retry-After``)."""

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class LocalError(AgentError):
    exit_code = ExitCode.LOCAL_ERROR


class JobError(AgentError):
    """A job cannot be carried out; its message becomes the job's failure text.  ``result``:
    what a response job did before it failed (reported with ``partial: true``)."""

    def __init__(self, message: str, code: int = 1, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.result = result


class JobDeferred(Exception):
    """A job that cannot be answered yet (UpgradeAgent before its restart): Runjobs keeps
    it stored, unreported, and runs it again later."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
