"""Request bodies of the agent API as sent on the wire: ``Content-Encoding`` and NDJSON."""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from garrison.server.errors import MalformedRequestError


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """gzip bodies, inflated with a cap: a small bomb cannot exhaust memory."""
    if not encoding or encoding.strip().lower() in ("identity", ""):
        return body
    if encoding.strip().lower() not in ("gzip", "x-gzip"):
        raise MalformedRequestError(f"unsupported Content-Encoding {encoding!r}; use gzip")
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise MalformedRequestError("body is not valid gzip") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise MalformedRequestError(f"decompressed body is larger than {limit} bytes")
    return out


def split_items(body: bytes, content_type: str | None) -> list[Any]:
    """A JSON array, or NDJSON (one event per line)."""
    text = body.strip()
    if not text:
        raise MalformedRequestError("request body is empty; send a JSON array or NDJSON")
    ndjson = bool(content_type and "ndjson" in content_type) or not text.startswith(b"[")
    if not ndjson:
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise MalformedRequestError(f"body is not valid JSON: {exc}") from None
        if not isinstance(items, list):
            raise MalformedRequestError("body must be a JSON array of events")
        return items
    items = []
    for number, line in enumerate(text.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise MalformedRequestError(f"line {number} is not valid JSON: {exc}") from None
    return items
