"""Domain errors.  Services raise these; they say what went wrong (``code``, ``message``,
``field``), never how a protocol reports it: the HTTP edge maps each type to a status
(``errors_http.status_of``)."""

from __future__ import annotations

import math


class GarrisonError(Exception):
    """Base of every error Garrison reports to a caller."""

    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInputError(GarrisonError):
    code = "invalid_input"


class MalformedRequestError(GarrisonError):
    code = "malformed_request"


class NotAuthenticatedError(GarrisonError):
    code = "not_authenticated"


class ForbiddenError(GarrisonError):
    code = "forbidden"


class StationDeniedError(ForbiddenError):
    """A station the authorization procedure denied, until an administrator allows it."""

    code = "station_denied"

    def __init__(self, message: str, *, station_id: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.station_id = station_id


class NotFoundError(GarrisonError):
    code = "not_found"


class ConflictError(GarrisonError):
    code = "conflict"


class PayloadTooLargeError(GarrisonError):
    """What was sent is bigger than a limit allows (a file over the cap or a quota)."""

    code = "too_large"


class HashMismatchError(InvalidInputError):
    """The bytes sent do not hash to the SHA-256 they were sent under."""

    code = "hash_mismatch"


class EnrollmentRefusedError(GarrisonError):
    """An enrollment key that is unknown, expired, exhausted or revoked."""

    code = "enrollment_refused"


class UnknownStationError(NotFoundError):
    code = "unknown_station"


class UnknownJobError(NotFoundError):
    code = "unknown_job"


class RateLimitedError(GarrisonError):
    """Too many failed attempts (logins, enrollment keys): try again in ``retry_after``
    seconds (a whole number, at least 1)."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = max(1, math.ceil(retry_after))


class UnavailableError(GarrisonError):
    """The node cannot take this request now (too busy, its database away): nothing was
    done, try again in ``retry_after`` seconds (a whole number, at least 1)."""

    code = "unavailable"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class OverloadedError(UnavailableError):
    code = "overloaded"


class DatabaseUnavailableError(UnavailableError):
    code = "database_unavailable"


class UpstreamFailedError(GarrisonError):
    """A system Garrison talks to on the caller's behalf (an export target) failed."""

    code = "upstream_failed"
