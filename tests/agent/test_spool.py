from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.errors import RefusedError, ServerError, UnreachableError
from garrison.agent.spool import BACKOFF_MAX, Spool, backoff_delay


class FakeTransport:
    """Records what would go to the server; fails as told."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.fail: Exception | None = None
        self.refuse_events: set[int] = set()

    def post_task(self, path: str, task: str, obj: Any) -> Any:
        if self.fail:
            raise self.fail
        self.sent.append((path, obj))
        return {"status": "ok"}

    def request(self, method: str, path: str, *, json_body: Any = None, **_: Any) -> Any:
        if self.fail:
            raise self.fail
        results = []
        for i, event in enumerate(json_body):
            if i in self.refuse_events:
                results.append({"index": i, "status": "refused", "error": "bad"})
            else:
                self.sent.append((path, event))
                results.append({"index": i, "status": "stored"})
        return {"results": results}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_order_and_delivery(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.enqueue("scans", "Scan", {"n": 1})
    eid = spool.enqueue_event("STARTING_UP", {"ts": 1})
    spool.enqueue("jobs", "Runjobs", {"n": 2})
    transport = FakeTransport()
    result = spool.flush(transport)  # type: ignore[arg-type]
    assert (result.sent, result.remaining, result.error) == (3, 0, None)
    assert [p for p, _ in transport.sent] == ["scans", "events", "jobs"]
    assert transport.sent[1][1]["id"] == eid  # the spool id is the event id
    assert (tmp_path / "spool.db").stat().st_mode & 0o777 == 0o600


def test_unreachable_keeps_everything_and_backs_off(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path / "spool.db", clock=clock)
    spool.enqueue("scans", "Scan", {"n": 1})
    transport = FakeTransport()
    transport.fail = UnreachableError("down")
    result = spool.flush(transport)  # type: ignore[arg-type]
    assert isinstance(result.error, UnreachableError)
    assert result.remaining == 1
    # within the backoff nothing is tried
    transport.fail = None
    assert spool.flush(transport).sent == 0  # type: ignore[arg-type]
    assert transport.sent == []
    clock.now += BACKOFF_MAX * 2
    assert spool.flush(transport).sent == 1  # type: ignore[arg-type]


def test_server_error_retried_refused_dropped_401_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.enqueue("scans", "Scan", {"n": 1})
    spool.enqueue("scans", "Scan", {"n": 2})
    transport = FakeTransport()
    transport.fail = ServerError("500", 500)
    assert spool.flush(transport, force=True).remaining == 2  # type: ignore[arg-type]
    transport.fail = RefusedError("401", 401)
    assert spool.flush(transport, force=True).remaining == 2  # type: ignore[arg-type]
    transport.fail = RefusedError("400 bad", 400)
    result = spool.flush(transport, force=True)  # type: ignore[arg-type]
    assert (result.dropped, result.remaining) == (2, 0)
    assert spool.stats()["dropped_refused"] == 2


def test_refused_events_dropped_others_sent(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    for i in range(3):
        spool.enqueue_event("STARTING_UP", {"ts": i})
    transport = FakeTransport()
    transport.refuse_events = {1}
    result = spool.flush(transport)  # type: ignore[arg-type]
    assert (result.sent, result.dropped, result.remaining) == (2, 1, 0)


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, rng) for n in range(1, 12)]
    assert 2 <= delays[0] <= 2.5
    assert 4 <= delays[1] <= 5
    assert all(d <= BACKOFF_MAX * 1.25 for d in delays)
    assert delays[-1] >= BACKOFF_MAX


def test_expiry_after_max_age(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path / "spool.db", max_age_days=21, clock=clock)
    spool.enqueue("scans", "Scan", {"old": True})
    clock.now += 20 * 86400
    spool.enqueue("scans", "Scan", {"new": True})
    clock.now += 2 * 86400
    spool.expire()
    assert [m.body for m in spool.pending()] == [{"new": True}]
    assert spool.stats()["dropped_expired"] == 1


def test_size_cap_drops_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=1000)
    for i in range(30):
        spool.enqueue("scans", "Scan", {"i": i, "pad": "x" * 80})
    bodies = [m.body["i"] for m in spool.pending()]
    assert bodies == list(range(30 - len(bodies), 30))
    assert spool.stats()["bytes"] <= 1000
    assert spool.stats()["dropped_cap"] == 30 - len(bodies)


WRITER = """
import sys
from pathlib import Path
from garrison.agent.spool import Spool
spool = Spool(Path(sys.argv[1]))
i = 0
while True:
    mid = spool.enqueue("scans", "Scan", {"i": i})
    print(mid, flush=True)
    i += 1
"""


def test_kill_9_loses_nothing_queued(tmp_path: Path) -> None:
    db = tmp_path / "spool.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acknowledged: list[str] = []
    deadline = time.monotonic() + 30
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        acknowledged.append(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert len(acknowledged) >= 200
    stored = {m.id for m in Spool(db).pending()}
    missing = [a for a in acknowledged if a not in stored]
    assert missing == []


def test_full_disk_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=10**9)
    spool.db.execute("PRAGMA max_page_count = 8")  # a tiny "disk"
    from garrison.agent.errors import LocalError

    def fill() -> None:
        for _ in range(200):
            spool.enqueue("scans", "Scan", {"pad": "x" * 4000})

    with pytest.raises(LocalError, match="spool: cannot queue"):
        fill()


def test_busy_server_keeps_everything_until_its_retry_after(tmp_path: Path) -> None:
    """429/503 with Retry-After: nothing is dropped, and nothing is tried before then."""
    from garrison.agent.errors import BusyError

    clock = Clock()
    spool = Spool(tmp_path / "spool.db", clock=clock)
    for i in range(3):
        spool.enqueue_event("STARTING_UP", {"ts": i})
    transport = FakeTransport()
    transport.fail = BusyError("503 overloaded", 503, retry_after=40.0)
    result = spool.flush(transport)  # type: ignore[arg-type]
    assert isinstance(result.error, BusyError)
    assert (result.dropped, result.remaining) == (0, 3)
    due = spool.next_attempt()
    assert due is not None
    assert 40.0 <= due - clock.now <= 50.0  # Retry-After plus at most 25 % jitter
    transport.fail = None
    clock.now += 39.0
    assert spool.flush(transport).sent == 0  # type: ignore[arg-type]
    clock.now += 12.0
    assert spool.flush(transport).sent == 3  # type: ignore[arg-type]
