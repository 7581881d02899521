"""What the admin API accepts as ids, offsets, times and text: one copy for every route.

Ids end in id columns that are 64-bit on SQLite but 32-bit on PostgreSQL (``integer``),
offsets in 64-bit SQL, and JSON bodies are stored with orjson, which writes 64-bit integers
only: a larger number cannot be compared with, written to or serialised into them (sqlite3
raises ``OverflowError``, PostgreSQL "integer out of range", orjson "Integer exceeds 64-bit
range"), so the types below bound them, the same on both backends, and the request is
refused with 422 naming the field.  NUL
cannot be stored in PostgreSQL text nor in an event (the catalogue refuses it, and every
admin change is an ``audit`` event), so no admin input may hold one, nor a lone
surrogate (which no UTF-8 store can hold): ``storable_input`` refuses both wherever they
are (path, query, JSON body) before any route runs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Annotated, Any

from annotated_types import Interval
from fastapi import Request
from pydantic import AfterValidator

from garrison.server.errors import InvalidInputError

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
# The largest id a row can have on PostgreSQL (serial ``integer`` columns).
ID_MAX = 2**31 - 1

# A row id (path, query or body): ids start at 1.
Id = Annotated[int, Interval(ge=1, le=ID_MAX)]
Offset = Annotated[int, Interval(ge=0, le=INT64_MAX)]
Limit = Annotated[int, Interval(ge=1, le=1000)]


def _utc(value: dt.datetime) -> dt.datetime:
    """A time without a zone is UTC; one with a zone is converted, which overflows at the
    ends of the calendar (0001-01-01T00:00+01:00): refused rather than a 500 at the store."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("time is out of range once converted to UTC") from None


UtcTime = Annotated[dt.datetime, AfterValidator(_utc)]


def _walk(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every scalar and key in a decoded JSON document with its dotted path, iteratively:
    the body may nest as deep as the JSON parser allows, deeper than Python's recursion."""
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                yield child_path, key
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}" if path else str(i), child) for i, child in enumerate(item))
        else:
            yield path, item


def _check(field: str, value: Any) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInputError(f"{field}: must not contain NUL characters", field=field)
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                # A lone surrogate ("\ud800" in JSON): neither the database nor orjson
                # (the event log's encoder) can store it.
                raise InvalidInputError(
                    f"{field}: must be Unicode text (no lone surrogates)", field=field
                ) from None
    elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise InvalidInputError(
            f"{field}: integers must fit in 64 bits ({INT64_MIN} to {INT64_MAX})", field=field
        )


async def storable_input(request: Request) -> None:
    """Refuse, before any route's own validation, what no admin route can store: NUL in any
    text, a JSON integer beyond 64 bits.  Starlette keeps the body read here for the route."""
    for name, text in request.path_params.items():
        _check(name, text)
    for name, text in request.query_params.multi_items():
        _check(name, text)
    body = await request.body()
    if not body:
        return
    content_type = request.headers.get("content-type", "")
    if content_type and "json" not in content_type:
        # A text body is the route's to check: the one there is, a procedure's Lua source,
        # is refused with NUL by procedures/service.put, after the bytecode check.
        return
    try:
        # The standard library's parser, as the routes' own: it keeps integers of any size.
        document = json.loads(body)
    except (ValueError, RecursionError):
        return  # not JSON: the route answers 400
    for field, value in _walk(document, ""):
        _check(field or "body", value)
