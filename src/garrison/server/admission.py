"""Bounded admission: how many agent requests may wait for, or hold, a worker thread.

A request that needs the database runs in a thread; Starlette's pool runs 40 at a time and
queues the rest without bound, so a burst of ten times the usual rate would queue in memory
until clients time out and retry (a timeout storm).  Past ``limit`` requests pending on this
process, the next is refused at once with ``503 overloaded`` and ``Retry-After``: nothing
was done, and the Garrison agent keeps what it was sending in its spool until then.  Held
long-polls wait on the event loop, not in a thread, and do not count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from garrison.server.errors import OverloadedError

P = ParamSpec("P")
T = TypeVar("T")
# Long enough for a burst's queue to drain; the agent adds its own jitter.
RETRY_AFTER_SECONDS = 2


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending = 0  # only touched on the event loop
        self.refused = 0

    async def run(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self.pending >= self.limit:
            self.refused += 1
            raise OverloadedError(
                "the server is busy; try again later", retry_after=RETRY_AFTER_SECONDS
            )
        self.pending += 1
        try:
            return await run_in_threadpool(work, *args, **kwargs)
        finally:
            self.pending -= 1
