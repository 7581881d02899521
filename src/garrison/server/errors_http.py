"""The HTTP edge of the error model: which status each error type gets, and the one writer
of error bodies (FastAPI handlers, the agent edge and the middleware all answer through it).

Every error is a JSON object ``{"error", "message", "code"}`` (plus ``field`` when one input
is at fault), never HTML or a trace.  The Armadito agent parses every error body as JSON and
reads ``message`` on enrollment errors, so each body carries both ``error`` and ``message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from garrison.server import errors as e
from garrison.server import logs
from garrison.server.store.engine import DatabaseUnreachableError

log = structlog.get_logger("garrison.http")

# Domain error type -> HTTP status.  An error type not listed gets the status of its nearest
# listed base class (see ``status_of``), so a new subclass needs no entry unless it differs.
STATUSES: Mapping[type[e.GarrisonError], int] = {
    e.GarrisonError: 400,
    e.MalformedRequestError: 400,
    e.NotAuthenticatedError: 401,
    e.ForbiddenError: 403,
    e.EnrollmentRefusedError: 403,
    e.NotFoundError: 404,
    e.ConflictError: 409,
    e.InvalidInputError: 422,
    e.HashMismatchError: 400,
    e.PayloadTooLargeError: 413,
    e.RateLimitedError: 429,
    e.UpstreamFailedError: 502,
    e.UnavailableError: 503,
}

# What a client is told to wait when the database is away: long enough not to hammer it
# while it restarts, short enough that a fleet's spools drain soon after it is back.
DATABASE_RETRY_SECONDS = 5

# Errors raised as HTTP statuses (routing, the body limit, FastAPI itself) -> ``code``.
HTTP_CODES: Mapping[int, str] = {
    400: "malformed_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_input",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


_resolved: dict[type[e.GarrisonError], int] = {}


def status_of(exc: e.GarrisonError) -> int:
    """The HTTP status of a domain error: that of the nearest class in ``STATUSES``."""
    kind = type(exc)
    status = _resolved.get(kind)
    if status is None:
        # Every GarrisonError has GarrisonError in its MRO, which STATUSES lists.
        status = next(STATUSES[cls] for cls in kind.__mro__ if cls in STATUSES)
        _resolved[kind] = status
    return status


def error_response(
    status: int,
    message: str,
    code: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """The one writer of error bodies."""
    body: dict[str, Any] = {"error": message, "message": message, "code": code}
    if field:
        body["field"] = field
    body.update(extra)
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def garrison_error_response(
    exc: e.GarrisonError, method: str, path: str, challenge: str
) -> Response:
    """``challenge`` is the ``WWW-Authenticate`` of a 401: Armadito agents send their Basic
    credentials only after a Basic challenge; the admin API asks for a Bearer token."""
    headers = None
    extra: dict[str, Any] = {}
    if isinstance(exc, e.NotAuthenticatedError):
        logs.authentication_refused(method, path, exc.message)
        headers = {"WWW-Authenticate": challenge}
    elif isinstance(exc, e.RateLimitedError | e.UnavailableError):
        headers = {"Retry-After": str(exc.retry_after)}
        extra["retry_after"] = exc.retry_after
    return error_response(status_of(exc), exc.message, exc.code, exc.field, headers, **extra)


def http_error_response(exc: HTTPException, method: str, path: str) -> Response:
    status = exc.status_code
    if status == 404:
        message = f"no such path: {path}"
    elif status == 405:
        message = f"method {method} is not allowed on {path}"
    else:
        message = str(exc.detail)
    code = HTTP_CODES.get(status, "http_error")
    return error_response(status, message, code, headers=exc.headers)


def unexpected_response(exc: Exception, method: str, path: str) -> Response:
    if isinstance(exc, DatabaseUnreachableError):
        log.warning("database unavailable", path=path, method=method, reason=str(exc))
        unavailable = e.DatabaseUnavailableError(
            "the database is unavailable; try again later", retry_after=DATABASE_RETRY_SECONDS
        )
        return garrison_error_response(unavailable, method, path, "")
    log.error("unhandled error", path=path, method=method, exc_info=exc)
    return error_response(500, "internal server error", HTTP_CODES[500])


def any_error_response(exc: Exception, method: str, path: str, challenge: str) -> Response:
    """The answer to any exception a plain (non-FastAPI) route raised."""
    if isinstance(exc, e.GarrisonError):
        return garrison_error_response(exc, method, path, challenge)
    if isinstance(exc, HTTPException):
        return http_error_response(exc, method, path)
    return unexpected_response(exc, method, path)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def validation_error_response(exc: RequestValidationError) -> Response:
    details = [
        {"field": _field(tuple(err.get("loc", ()))), "problem": str(err.get("msg", ""))}
        for err in exc.errors()
    ]
    if details and details[0]["problem"].startswith("JSON decode error"):
        return error_response(400, "request body is not valid JSON", HTTP_CODES[400])
    first = details[0] if details else {"field": "body", "problem": "invalid"}
    message = f"{first['field']}: {first['problem']}"
    return error_response(422, message, HTTP_CODES[422], first["field"], details=details)


def install(app: FastAPI) -> None:
    """The admin API's exception handlers (the agent API answers through ``AgentEdge``)."""

    async def garrison_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, e.GarrisonError):
            raise exc
        return garrison_error_response(exc, request.method, request.url.path, "Bearer")

    async def validation_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):
            raise exc
        return validation_error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):
            raise exc
        return http_error_response(exc, request.method, request.url.path)

    async def unexpected(request: Request, exc: Exception) -> Response:
        return unexpected_response(exc, request.method, request.url.path)

    app.add_exception_handler(e.GarrisonError, garrison_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
