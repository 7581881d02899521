"""The server raises its open-file soft limit to the hard limit at start, before its workers
exist (they inherit it), and says so: at the usual soft limit of 1024 a fleet's queued
connections made accept() fail with EMFILE (bench/findings.md, issue 20)."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.server.fdlimit import LOW_LIMIT, OpenFiles, raise_open_files
from tests.live import start_server
from tests.server.multiprocess import worker_pids

LOWERED = 256


@contextlib.contextmanager
def soft_limit(value: int) -> Iterator[None]:
    """This process's soft limit lowered (children started meanwhile inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= value:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (value, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def limits_of(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError(f"no open-file limit in /proc/{pid}/limits")


def test_the_soft_limit_is_raised_to_the_hard_limit() -> None:
    with soft_limit(LOWERED):
        got = raise_open_files()
        now = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert got.before == LOWERED
    assert got.raised
    assert now[0] == got.soft
    assert got.soft == got.hard or got.hard == resource.RLIM_INFINITY
    assert "raised from 256 to" in got.describe()


def test_a_low_hard_limit_is_reported_with_what_to_change() -> None:
    low = OpenFiles(before=1024, soft=20_000, hard=20_000)
    assert low.low
    assert "LimitNOFILE" in low.describe()
    assert not OpenFiles(before=1024, soft=LOW_LIMIT, hard=LOW_LIMIT).low


def test_every_worker_runs_with_the_raised_limit(tmp_path: Path) -> None:
    # Above what this process holds already (a long test session holds hundreds of
    # descriptors: at 256 it could not open the server's port any more).
    lowered = max(LOWERED, len(os.listdir("/proc/self/fd")) + 256)
    with soft_limit(lowered):
        live = start_server(tmp_path / "data", None, {"GARRISON_WORKERS": "2"}, wait=60)
    try:
        hard = str(resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        hard = "unlimited" if hard == str(resource.RLIM_INFINITY) else hard
        supervisor = live.process.pid
        for pid in [supervisor, *worker_pids(live, 2)]:
            soft, its_hard = limits_of(pid)
            assert its_hard == hard
            assert soft == its_hard or (its_hard == "unlimited" and int(soft) > lowered)
    finally:
        live.stop()
    assert f"open-file limit raised from {lowered:,}" in live.output
