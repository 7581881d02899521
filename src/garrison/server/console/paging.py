"""Paging links for the console's lists: the page's bounds and the previous/next URLs,
keeping every other query parameter."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from starlette.requests import Request

PAGE_SIZE = 50
MAX_OFFSET = 10_000_000


@dataclass(frozen=True)
class Page:
    first: int
    last: int
    total: int
    prev_url: str | None
    next_url: str | None


def offset_of(request: Request) -> int:
    raw = request.query_params.get("offset", "0")
    return min(int(raw), MAX_OFFSET) if raw.isdigit() else 0


def page(request: Request, offset: int, shown: int, total: int, size: int = PAGE_SIZE) -> Page:
    def at(where: int) -> str:
        params = dict(request.query_params)
        params["offset"] = str(where)
        return f"{request.url.path}?{urllib.parse.urlencode(params)}"

    return Page(
        first=offset + 1 if shown else 0,
        last=offset + shown,
        total=total,
        prev_url=at(max(0, offset - size)) if offset > 0 else None,
        next_url=at(offset + size) if offset + shown < total else None,
    )
