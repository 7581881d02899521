"""The per-address limit on station_authorization_failed events (stations/failures.py)."""

from __future__ import annotations

from garrison.server.stations.failures import FailureLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_report_per_address_per_interval_then_the_count() -> None:
    clock = Clock()
    limiter = FailureLimiter(10.0, clock=clock)
    assert limiter.failed("a") == 0
    assert [limiter.failed("a") for _ in range(4)] == [None] * 4
    assert limiter.failed("b") == 0  # another address has its own interval
    clock.now += 9.9
    assert limiter.failed("a") is None
    clock.now += 0.1
    assert limiter.failed("a") == 5
    assert limiter.failed("a") is None


def test_zero_interval_reports_every_failure() -> None:
    limiter = FailureLimiter(0.0, clock=Clock())
    assert [limiter.failed("a") for _ in range(3)] == [0, 0, 0]


def test_memory_is_bounded_by_forgetting_the_longest_reported() -> None:
    clock = Clock()
    limiter = FailureLimiter(60.0, capacity=3, clock=clock)
    for address in ("a", "b", "c"):
        assert limiter.failed(address) == 0
        clock.now += 1
    assert limiter.failed("a") is None  # counted, not reported
    assert limiter.failed("d") == 0
    assert len(limiter) == 3
    # "a" was the one reported longest ago: forgotten, so it is reported again at once.
    assert limiter.failed("a") == 0
    assert len(limiter) == 3
    for n in range(10_000):
        limiter.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter) == 3
