"""The HTTP edge of the error model: every error is a JSON object, never HTML or a trace.

The Armadito agent parses every error body as JSON (and reads ``message`` on enrollment
errors), so each body carries both ``error`` and ``message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from garrison.server.errors import GarrisonError, NotAuthenticatedError
from garrison.server.middleware import is_agent_path

log = structlog.get_logger("garrison.http")


def error_response(
    status: int,
    message: str,
    code: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {"error": message, "message": message, "code": code}
    if field:
        body["field"] = field
    body.update(extra)
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def garrison_error_response(request: Request, exc: GarrisonError, basic_challenge: str) -> Response:
    headers = None
    if isinstance(exc, NotAuthenticatedError):
        # Armadito agents send their Basic credentials only after this challenge.
        agent = is_agent_path(request.url.path)
        headers = {"WWW-Authenticate": basic_challenge if agent else "Bearer"}
    return error_response(exc.status, exc.message, exc.code, exc.field, headers)


def http_error_response(request: Request, exc: StarletteHTTPException) -> Response:
    messages = {
        404: f"no such path: {request.url.path}",
        405: f"method {request.method} is not allowed on {request.url.path}",
    }
    message = messages.get(exc.status_code, str(exc.detail))
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, message, code, headers=exc.headers)


def unexpected_response(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", path=request.url.path, method=request.method, exc_info=exc)
    return error_response(500, "internal server error", "internal_error")


def any_error_response(request: Request, exc: Exception, basic_challenge: str) -> Response:
    """The answer to any exception a plain (non-FastAPI) route raised."""
    if isinstance(exc, GarrisonError):
        return garrison_error_response(request, exc, basic_challenge)
    if isinstance(exc, StarletteHTTPException):
        return http_error_response(request, exc)
    return unexpected_response(request, exc)


def install(app: FastAPI, basic_challenge: str) -> None:
    async def garrison_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, GarrisonError):
            raise exc
        return garrison_error_response(request, exc, basic_challenge)

    async def validation_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):
            raise exc
        errors = exc.errors()
        details = [
            {"field": _field(tuple(e.get("loc", ()))), "problem": str(e.get("msg", ""))}
            for e in errors
        ]
        if details and details[0]["problem"].startswith("JSON decode error"):
            return error_response(400, "request body is not valid JSON", "malformed_request")
        first = details[0] if details else {"field": "body", "problem": "invalid"}
        message = f"{first['field']}: {first['problem']}"
        return error_response(422, message, "invalid_input", first["field"], details=details)

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):
            raise exc
        return http_error_response(request, exc)

    async def unexpected(request: Request, exc: Exception) -> Response:
        return unexpected_response(request, exc)

    app.add_exception_handler(GarrisonError, garrison_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
