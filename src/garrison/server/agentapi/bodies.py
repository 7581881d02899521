"""Request bodies of the agent API as sent on the wire: ``Content-Encoding``, NDJSON, and
the nesting every parsed body is held to."""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from garrison.server.errors import MalformedRequestError

# Deeper JSON is refused: the stored columns and events are written with orjson, which
# cannot serialise more than 255 levels, and no agent's body comes near this.
MAX_DEPTH = 64


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` arrays and objects.  Recursive, but never
    deeper than ``limit``: it stops there."""
    if isinstance(value, dict | list) and not _within(value, limit):
        raise MalformedRequestError(f"body is nested deeper than {limit} levels")


def _within(value: Any, levels: int) -> bool:
    # On every request body, so kept cheap (a batch of 10,000 events in a few milliseconds):
    # exact type checks (the JSON parser makes plain dicts and lists), no allocation per child.
    if levels <= 0:
        return False
    for child in value.values() if type(value) is dict else value:
        kind = type(child)
        if (kind is dict or kind is list) and not _within(child, levels - 1):
            return False
    return True


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """gzip bodies, inflated with a cap: a small bomb cannot exhaust memory.  Exactly one
    complete gzip member: a stream cut short (no trailer, so no CRC check) or followed by
    more data (a second member, which would be ignored) is refused, so a batch is stored
    whole or not at all."""
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
    if not inflater.eof:
        raise MalformedRequestError("gzip body is truncated: its stream has no end")
    if inflater.unused_data:
        raise MalformedRequestError("gzip body has data after its end (send one gzip member)")
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
        check_depth(items)
        return items
    items = []
    for number, line in enumerate(text.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise MalformedRequestError(f"line {number} is not valid JSON: {exc}") from None
        check_depth(item)
        items.append(item)
    return items
