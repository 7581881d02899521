"""SQLite write transactions take turns in a process, first come first served
(store.engine.FairWriteLock): the consumers' short transactions are no longer starved by
the events writer's back-to-back ones (bench/findings.md, session 13)."""

from __future__ import annotations

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


def test_a_databases_write_transactions_queue_for_their_turn(tmp_path: Path) -> None:
    """Database.transaction on SQLite takes the process's turn before BEGIN IMMEDIATE: a
    second writer waits in the turn's queue (not in SQLite's busy handler) and goes as soon
    as the first commits; a read does not queue at all."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    migrate.upgrade(url)
    db = Database(url)
    turn = db._write_turn
    if turn is None:
        raise AssertionError("SQLite write transactions take no turn")
    holding, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with db.transaction() as session:
            session.execute(text("SELECT 1"))
            holding.set()
            release.wait(5)
            order.append("first")

    def second() -> None:
        with db.transaction():
            order.append("second")

    one = threading.Thread(target=first)
    one.start()
    holding.wait(5)
    two = threading.Thread(target=second)
    two.start()
    try:
        _wait_for(lambda: len(turn._queue) == 1)
        with db.reading() as session:  # reads never wait for a turn
            session.execute(text("SELECT 1"))
        assert order == []
    finally:
        release.set()
        one.join(5)
        two.join(5)
        db.dispose()
    assert order == ["first", "second"]
    assert not turn._queue
