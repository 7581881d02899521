"""Domain errors.  Services raise these; only the HTTP edge maps them to status codes."""

from __future__ import annotations


class GarrisonError(Exception):
    """Base of every error Garrison reports to a caller."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInputError(GarrisonError):
    status = 422
    code = "invalid_input"


class MalformedRequestError(GarrisonError):
    status = 400
    code = "malformed_request"


class NotAuthenticatedError(GarrisonError):
    status = 401
    code = "not_authenticated"


class ForbiddenError(GarrisonError):
    status = 403
    code = "forbidden"


class NotFoundError(GarrisonError):
    status = 404
    code = "not_found"


class ConflictError(GarrisonError):
    status = 409
    code = "conflict"


class EnrollmentRefusedError(GarrisonError):
    """An enrollment key that is unknown, expired, exhausted or revoked."""

    status = 403
    code = "enrollment_refused"


class UnknownStationError(NotFoundError):
    code = "unknown_station"


class UnknownJobError(NotFoundError):
    code = "unknown_job"
