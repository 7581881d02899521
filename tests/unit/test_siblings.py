"""The counter the workers of one node share: every process mapping the file sees a bump at
once, and increments from several processes are never lost."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from garrison.server.siblings import SiblingCounter


def _bump_many(path: str, times: int) -> None:
    counter = SiblingCounter(Path(path))
    try:
        for _ in range(times):
            counter.bump()
    finally:
        counter.close()


def test_a_bump_is_seen_by_another_mapping_of_the_file(tmp_path: Path) -> None:
    one = SiblingCounter(tmp_path / "run" / "jobs.counter")
    two = SiblingCounter(tmp_path / "run" / "jobs.counter")
    try:
        assert one.read() == two.read() == 0
        assert one.bump() == 1
        assert two.read() == 1
        assert two.bump() == 2
        assert one.read() == 2
    finally:
        one.close()
        two.close()


def test_increments_from_several_processes_are_all_counted(tmp_path: Path) -> None:
    path = tmp_path / "jobs.counter"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_bump_many, args=(str(path), 500)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    counter = SiblingCounter(path)
    try:
        assert counter.read() == 1500
    finally:
        counter.close()


def test_an_existing_counter_keeps_its_value_when_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "jobs.counter"
    first = SiblingCounter(path)
    first.bump()
    first.close()
    again = SiblingCounter(path)
    try:
        assert again.read() == 1
    finally:
        again.close()


def test_a_closed_counter_counts_as_moved_and_holds_no_descriptor(tmp_path: Path) -> None:
    counter = SiblingCounter(tmp_path / "c")
    counter.bump()
    held = len(os.listdir("/proc/self/fd"))
    counter.close()
    counter.close()  # twice: nothing more to do
    assert len(os.listdir("/proc/self/fd")) < held
    assert counter.read() == -1
    assert counter.bump() == -1
