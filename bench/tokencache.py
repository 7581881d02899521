"""The agent token cache at fleet scale: put, get and forget-by-station, old shape vs new.

    python -m bench.tokencache [--stations 100000] [--big 250000] [--rounds 3]

The old cache (``LegacyTokenCache`` below, the algorithm ``agentapi/auth.py`` had before
issue 13, kept here only as the baseline) rebuilt its whole dict on every ``put`` once it
held more than 200,000 entries, and ``forget_station`` rebuilt it to drop one station.  The
new one (``garrison.server.stations.credentials.TokenCache``) expires from the front of an
ordered dict and indexes digests by station.  Each figure is the mean cost of one call.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from garrison.common.tokens import token_hash
from garrison.server.stations.credentials import TokenCache

# Long enough that nothing expires while measuring, on however slow a machine: every entry
# is live, as with a fleet that checks in within the cache time.
TTL = 1e9


class LegacyTokenCache:
    """The pre-issue-13 algorithm, verbatim but for its name: the baseline measured."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, int, str]] = {}

    def get(self, digest: str) -> tuple[int, str] | None:
        with self._lock:
            entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1], entry[2]

    def put(self, digest: str, station_id: int, uuid: str) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) > 200_000:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            self._entries[digest] = (time.monotonic() + self.ttl, station_id, uuid)

    def forget_station(self, station_id: int) -> None:
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v[1] != station_id}

    def forget(self, station_ids: Iterable[int]) -> None:
        for station_id in station_ids:
            self.forget_station(station_id)


class Cache(Protocol):
    def get(self, digest: str) -> object: ...
    def put(self, digest: str, station_id: int, uuid: str) -> None: ...
    def forget(self, station_ids: Iterable[int]) -> None: ...


def digests(count: int, salt: str = "") -> list[str]:
    return [token_hash(f"gst_bench_{salt}{n}") for n in range(count)]


def per_call(calls: int, work: Callable[[], None]) -> float:
    """Seconds per call of ``work``, which makes ``calls`` calls."""
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) / calls


def filled(make: Callable[[float], Cache], keys: list[str]) -> Cache:
    cache = make(TTL)
    if isinstance(cache, LegacyTokenCache):
        # Loaded directly: through put, each of the entries past 200,000 would rebuild it.
        expires = time.monotonic() + TTL
        cache._entries = {d: (expires, sid, "U") for sid, d in enumerate(keys, start=1)}
        return cache
    for station_id, digest in enumerate(keys, start=1):
        cache.put(digest, station_id, "U")
    return cache


def best(rounds: int, calls: int, setup: Callable[[], Callable[[], None]]) -> float:
    """The fastest of ``rounds`` runs, in seconds per call: a loaded machine only ever
    slows a run down."""
    return min(per_call(calls, setup()) for _ in range(rounds))


def measure(
    name: str, make: Callable[[float], Cache], stations: int, big: int, rounds: int
) -> None:
    keys = digests(stations)
    full = filled(make, keys)

    def fill_empty() -> Callable[[], None]:
        cache = make(TTL)

        def fill() -> None:
            for station_id, digest in enumerate(keys, start=1):
                cache.put(digest, station_id, "U")

        return fill

    def read_full() -> Callable[[], None]:
        def read() -> None:
            for digest in keys:
                full.get(digest)

        return read

    # Forgetting is a re-enrollment or a deletion: measured on a sample, the cache full.
    sample = range(1, stations + 1, max(1, stations // 100))

    def revoke_some() -> Callable[[], None]:
        cache = filled(make, keys)

        def revoke() -> None:
            for station_id in sample:
                cache.forget((station_id,))

        return revoke

    # Past 200,000 live entries (a larger fleet, all checking in within the ttl).
    crowded = filled(make, digests(big, "big"))
    extra = digests(20, "extra")

    def add_crowded() -> Callable[[], None]:
        def add() -> None:
            for n, digest in enumerate(extra, start=1):
                crowded.put(digest, big + n, "U")

        return add

    put = best(rounds, stations, fill_empty)
    get = best(rounds, stations, read_full)
    forget = best(rounds, len(sample), revoke_some)
    put_big = best(rounds, len(extra), add_crowded)
    print(
        f"{name:<4} put {put * 1e6:8.2f} µs  get {get * 1e6:6.2f} µs  "
        f"forget {forget * 1e6:10.2f} µs  (at {stations:,} stations);  "
        f"put {put_big * 1e6:10.2f} µs (at {big:,} live entries)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=250_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print("mean cost of one call, best of", args.rounds, "rounds")
    measure("old", LegacyTokenCache, args.stations, args.big, args.rounds)
    measure("new", TokenCache, args.stations, args.big, args.rounds)


if __name__ == "__main__":
    main()
