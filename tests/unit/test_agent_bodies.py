"""``agentapi.bodies``: the gzip member rule and the nesting limit, without a server."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import pytest

from garrison.server.agentapi.bodies import MAX_DEPTH, check_depth, decompress
from garrison.server.errors import MalformedRequestError

BODY = b'[{"id": "a", "type": "process_started", "data": {}}]'
LIMIT = 1 << 20


def flushed(raw: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=31)
    return compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)


def bad_crc(raw: bytes) -> bytes:
    whole = bytearray(gzip.compress(raw))
    whole[-6] ^= 0xFF
    return bytes(whole)


def test_one_whole_member_inflates() -> None:
    assert decompress(gzip.compress(BODY), "gzip", LIMIT) == BODY
    assert decompress(BODY, None, LIMIT) == BODY
    assert decompress(BODY, "identity", LIMIT) == BODY


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (gzip.compress(BODY) * 2, "after its end"),
        (gzip.compress(BODY) + b"x", "after its end"),
        (flushed(BODY), "truncated"),
        (gzip.compress(BODY)[:-8], "truncated"),
        (bad_crc(BODY), "not valid gzip"),
        (b"not gzip", "not valid gzip"),
    ],
    # Named, not by their bytes: gzip's header holds the time, and each xdist worker must
    # collect the same ids.
    ids=["two members", "trailing byte", "flushed only", "no trailer", "bad crc", "not gzip"],
)
def test_anything_but_one_whole_member_is_refused(body: bytes, problem: str) -> None:
    with pytest.raises(MalformedRequestError) as refused:
        decompress(body, "gzip", LIMIT)
    assert problem in refused.value.message


def nested(levels: int) -> Any:
    value: Any = 1
    for i in range(levels):
        value = {"a": value} if i % 2 else [value]
    return value


def test_nesting_up_to_the_limit_passes_and_beyond_is_refused() -> None:
    check_depth(nested(MAX_DEPTH))
    check_depth("scalar")
    with pytest.raises(MalformedRequestError):
        check_depth(nested(MAX_DEPTH + 1))
    with pytest.raises(MalformedRequestError):
        check_depth(nested(5000))  # no RecursionError: the walk stops at the limit
