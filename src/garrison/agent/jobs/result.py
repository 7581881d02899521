"""The ``result`` a Runjobs report carries, held to the contract's 1 MiB (serialised): the
longest list is halved until it fits, and ``truncated: true`` says so."""

from __future__ import annotations

import json
from typing import Any

MAX_BYTES = 1 << 20


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _longest_list(result: dict[str, Any]) -> str | None:
    lists = [(len(v), k) for k, v in result.items() if isinstance(v, list) and v]
    return max(lists)[1] if lists else None


def _cut_text(result: dict[str, Any], limit: int) -> bool:
    """Shorten the longest string value; False when there is none worth cutting."""
    texts = [(len(v), k) for k, v in result.items() if isinstance(v, str) and len(v) > 64]
    if not texts:
        return False
    length, key = max(texts)
    over = size(result) - limit
    result[key] = result[key][: max(0, length - max(over, length // 2))]
    return True


def cap(result: dict[str, Any], limit: int = MAX_BYTES) -> dict[str, Any]:
    """``result`` itself when it fits; else a copy with lists (then long texts) shortened and
    ``truncated: true``.  Never larger than ``limit``: what cannot be cut is replaced by a
    note."""
    if size(result) <= limit:
        return result
    out = dict(result)
    out["truncated"] = True
    while size(out) > limit:
        key = _longest_list(out)
        if key is not None:
            out[key] = out[key][: len(out[key]) // 2]
            continue
        if not _cut_text(out, limit):
            return {"truncated": True, "note": f"the result was larger than {limit} bytes"}
    return out
