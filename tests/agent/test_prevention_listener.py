"""The permission listener in this process, with real fanotify permission events on a tmpfs
the test mounted (root): what it denies, what it answers from its cache, and that it always
answers: a decision past its deadline, a YARA rule over its budget and a full work queue
all fail open, counted; the agent's own opens are never held."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.config import ScanConfig
from garrison.agent.prevention import decide as decidemod
from garrison.agent.prevention.decide import Decider
from garrison.agent.prevention.listener import Decision, Listener
from garrison.agent.scan.engine import Engine
from garrison.agent.scan.signatures import SignatureDB
from garrison.agent.sensors.hashes import HashCache
from tests.agent.helpers import eicar, mounted_tmpfs
from tests.support import wait_for

pytestmark = pytest.mark.slow
MIB = 1024 * 1024


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("fanotify permission events need root")
    with mounted_tmpfs("garrison-listener-", "size=16m") as mount:
        yield mount


def _exe(directory: Path, name: str) -> tuple[Path, str]:
    path = directory / name
    path.write_bytes(Path("/bin/true").read_bytes() + os.urandom(16))
    path.chmod(0o755)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _db(*blocked: str) -> SignatureDB:
    from garrison.agent.scan.signatures import PACKAGED_DB, load_database

    db = load_database([PACKAGED_DB], use_yara=False)
    for digest in blocked:
        db.blocklist.add_hash(digest, "test")
    db.blocklist.freeze()
    return db


def _listener(db: SignatureDB, mount: Path, **kw: Any) -> tuple[Listener, list[Decision]]:
    got: list[Decision] = []
    options: dict[str, Any] = {
        "exec_paths": [str(mount)],
        "watch_paths": [],
        "scan": False,
        "deadline": 0.5,
        "verdict_cache": 100,
        "on_decision": got.append,
    }
    options.update(kw)
    decider = Decider(HashCache(8 * MIB, 64 * MIB), ScanConfig(yara=False), 8 * MIB, 0.5)
    listener = Listener(decider, db, **options)
    listener.start()
    return listener, got


def _runs(path: Path) -> bool:
    try:
        return subprocess.run([str(path)], check=False).returncode == 0
    except PermissionError:
        return False


def test_a_listed_hash_is_denied_then_answered_from_the_cache(tmpfs: Path) -> None:
    bad, bad_sha = _exe(tmpfs, "bad")
    good, _ = _exe(tmpfs, "good")
    listener, got = _listener(_db(bad_sha), tmpfs)
    try:
        assert not _runs(bad)
        assert not _runs(bad)
        assert _runs(good)
        wait_for(lambda: len(got) >= 2, what="both denies reported")
        assert [d.cached for d in got] == [False, True]
        assert got[0].verdict.rule == f"hash:{bad_sha}"
        assert got[0].kind == "exec"
        # New content (a new database object) is a new generation: decided again.
        listener.db = _db()
        assert _runs(bad)
        status = listener.status()
        assert status["denied"] == 2
        assert status["cached"] == 1
        assert status["fail_open"] == 0
    finally:
        listener.stop()
    assert _runs(bad)  # nothing marked once stopped


def test_a_decision_past_its_deadline_is_allowed_and_counted(
    tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow, slow_sha = _exe(tmpfs, "slow")
    release = threading.Event()
    real = Decider.decide

    def stuck(self: Decider, *args: Any) -> Any:
        release.wait(10)  # a decision that cannot be made in time
        return real(self, *args)

    monkeypatch.setattr(Decider, "decide", stuck)
    big = tmpfs / "big"  # above the inline size: decided by a worker, under the watchdog
    big.write_bytes(slow.read_bytes() + os.urandom(3 * MIB))
    big.chmod(0o755)
    listener, _ = _listener(_db(slow_sha, hashlib.sha256(big.read_bytes()).hexdigest()), tmpfs,
                            deadline=0.2)  # fmt: skip
    try:
        started = time.monotonic()
        assert _runs(big)  # on the block list, but not decided in time: allowed
        assert time.monotonic() - started < 5
        # The watchdog answers the kernel before it counts: the exec may finish first.
        wait_for(
            lambda: listener.status().get("fail_open_deadline", 0) == 1,
            what="the fail-open counted",
        )
        assert listener.status()["fail_open_deadline"] == 1
        release.set()
        wait_for(lambda: listener.status().get("late", 0) == 1, what="the late verdict counted")
    finally:
        release.set()
        listener.stop()


def test_a_yara_rule_over_its_budget_is_contained(
    tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    yara = pytest.importorskip("yara")

    def too_slow(self: Engine, data: bytes, yara_timeout: int = 60) -> Any:
        raise yara.TimeoutError("internal error: 30")

    monkeypatch.setattr(Engine, "match", too_slow)
    watched = tmpfs / "watched"
    watched.mkdir()
    target = watched / "file.txt"
    target.write_text("scanned on open")  # by this process: the listener is not started yet
    listener, got = _listener(_db(), tmpfs, exec_paths=[], watch_paths=[str(watched)], scan=True)
    try:
        done = subprocess.run(["cat", str(target)], capture_output=True, text=True, check=False)
        assert done.stdout == "scanned on open"  # allowed: the scan could not finish
        wait_for(lambda: listener.status()["yara_timeouts"] >= 1, what="the timeout counted")
        assert got == []
    finally:
        listener.stop()


def test_eicar_is_denied_on_open_and_the_agents_own_opens_are_not_held(tmpfs: Path) -> None:
    watched = tmpfs / "watched"
    watched.mkdir()
    sample = watched / "eicar.com"
    sample.write_bytes(eicar())
    listener, got = _listener(_db(), tmpfs, exec_paths=[], watch_paths=[str(watched)], scan=True)
    try:
        done = subprocess.run(["cat", str(sample)], capture_output=True, text=True, check=False)
        assert done.returncode != 0
        assert "Operation not permitted" in done.stderr
        wait_for(lambda: got, what="the detection reported")
        assert got[0].verdict.reason == "threat"
        assert "Eicar" in got[0].verdict.rule
        # This process is the listener's: its own open is answered at once, undecided.
        assert sample.read_bytes() == eicar()
        assert listener.status()["own"] >= 1
    finally:
        listener.stop()


def test_a_full_work_queue_fails_open_counted(tmpfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from garrison.agent.prevention import listener as listenermod

    monkeypatch.setattr(listenermod, "QUEUE", 1)
    monkeypatch.setattr(listenermod, "INLINE_MAX", 0)  # every decision to the workers
    release = threading.Event()
    real = Decider.decide

    def stuck(self: Decider, *args: Any) -> Any:
        release.wait(10)
        return real(self, *args)

    monkeypatch.setattr(Decider, "decide", stuck)
    paths = [_exe(tmpfs, f"x{n}")[0] for n in range(4)]
    listener, _ = _listener(_db("00" * 32), tmpfs, deadline=5.0, workers=1)
    try:
        # Each exec from its own thread: a spawn returns only once the exec was answered.
        codes: list[int] = []
        threads = [
            threading.Thread(target=lambda p=p: codes.append(subprocess.run([str(p)]).returncode))
            for p in paths
        ]
        for thread in threads:
            thread.start()
        wait_for(
            lambda: listener.status().get("fail_open_queue", 0) >= 1,
            timeout=10, what="a queue-full fail open",
        )  # fmt: skip
        release.set()
        for thread in threads:
            thread.join(10)
        assert codes == [0, 0, 0, 0]
    finally:
        release.set()
        listener.stop()


def test_the_cache_is_per_file_version() -> None:
    cache = decidemod.VerdictCache(2)
    generation = object()
    key = (1, 2, 3, 4, 5)
    cache.put(generation, key, True, decidemod.Verdict(False, "threat", "X"))
    assert cache.get(generation, key, False) == decidemod.Verdict(False, "threat", "X")
    assert cache.get(generation, (1, 2, 3, 4, 6), True) is None  # changed since
    assert cache.get(object(), key, True) is None  # new content: emptied
    assert len(cache) == 0
