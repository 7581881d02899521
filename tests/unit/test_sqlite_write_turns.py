"""SQLite write transactions take turns in a process, first come first served
(store.engine.FairWriteLock): the consumers' short transactions are no longer starved by
the events writer's back-to-back ones (bench/findings.md, session 13)."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from garrison.server.store import migrate
from garrison.server.store.engine import Database, DatabaseBusyError, FairWriteLock


def _wait_for(condition: object, seconds: float = 5.0) -> None:
    end = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > end:
            raise TimeoutError("condition not reached")
        time.sleep(0.005)


def test_waiting_writers_get_their_turn_in_the_order_they_asked() -> None:
    lock = FairWriteLock()
    order: list[int] = []
    lock.acquire(1)
    threads = []

    def take_turn(n: int) -> None:
        lock.acquire(5)
        order.append(n)
        lock.release()

    for n in range(5):
        thread = threading.Thread(target=take_turn, args=(n,))
        thread.start()
        threads.append(thread)
        # Each one queued before the next asks.
        _wait_for(lambda n=n: len(lock._queue) == n + 1)
    lock.release()
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_a_thread_that_holds_its_turn_may_write_again_inside_it() -> None:
    lock = FairWriteLock()
    with lock.held(), lock.held():
        pass
    # Released twice over: another thread gets it at once.
    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(lock.acquire(0.5)))
    thread.start()
    thread.join(5)
    assert got == [True]


def test_no_turn_in_time_is_a_busy_database_and_leaves_the_queue() -> None:
    lock = FairWriteLock()
    lock.acquire(1)
    errors: list[BaseException] = []

    def late() -> None:
        try:
            with lock.held(timeout=0.05):
                pass
        except DatabaseBusyError as exc:
            errors.append(exc)

    thread = threading.Thread(target=late)
    thread.start()
    thread.join(5)
    assert len(errors) == 1
    assert "busy" in str(errors[0])
    assert not lock._queue
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


def test_a_short_write_is_served_between_two_long_ones(tmp_path: Path) -> None:
    """A writer that begins again the moment it commits no longer takes every turn: a
    transaction asked for meanwhile goes next."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    migrate.upgrade(url)
    db = Database(url)
    stop = threading.Event()
    turns: list[str] = []

    def busy_writer() -> None:
        while not stop.is_set():
            with db.transaction() as session:
                session.execute(text("SELECT 1"))
                turns.append("writer")
                time.sleep(0.02)

    writer = threading.Thread(target=busy_writer)
    writer.start()
    try:
        _wait_for(lambda: len(turns) >= 2)
        for _ in range(5):
            with db.transaction():
                turns.append("short")
    finally:
        stop.set()
        writer.join(5)
        db.dispose()
    # Each short write waited for the long one in progress only (before turns were kept,
    # SQLite's busy handler let the writer win nearly every time, up to its 15 s timeout).
    shorts = [i for i, t in enumerate(turns) if t == "short"]
    assert len(shorts) == 5
    assert max(b - a for a, b in itertools.pairwise(shorts)) <= 2, turns
