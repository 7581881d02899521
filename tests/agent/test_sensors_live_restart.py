"""Real processes: the agent stopped (SIGTERM) and started again in the middle of a stream of
execs loses and duplicates nothing.

Every exec that was over before the SIGTERM arrives exactly once (by event id and by its
unique argument): the graceful stop reads what the kernel had queued and the spool keeps it
across the restart.  Long-lived processes started while the agent was down, which the
kernel's stream never shows it, are reported after the restart (``seen_at_start``), once.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.agent import test_sensors_live as live
from tests.agent.test_live import Admin
from tests.agent.test_sensors_live import Daemon, _events, _probe, _running
from tests.live import LiveServer
from tests.support import wait_for

pytestmark = live.pytestmark
connector, server, agent = live.connector, live.server, live.agent


def _probe_events(admin: Admin, exe: Path, sha256: str) -> list[dict[str, Any]]:
    # /bin/sleep (the probe's original) has the same SHA-256: keep the probe's own execs.
    found = _events(admin, type="process_started", hash=sha256)
    return [e for e in found if e["data"].get("file_path") == str(exe)]


def _argument(event: dict[str, Any]) -> str:
    command_line = event["data"].get("command_line")
    if not isinstance(command_line, str):
        raise AssertionError(f"an event without its command line: {event}")
    return command_line.split()[-1]


def test_a_restart_mid_stream_loses_and_duplicates_nothing(
    server: LiveServer, agent: Callable[..., Daemon], tmp_path: Path
) -> None:
    admin = Admin(server)
    daemon = agent(lambda config: None)
    _running(admin)
    exe, sha256 = _probe(tmp_path)
    run = uuid.uuid4().int % 10**6
    # A sleep of 0.2 s whose digits are unique: /proc is read long before it exits.
    arguments = [f"0.2{run:06d}{i:04d}" for i in range(10_000)]
    done: list[tuple[int, float, float]] = []  # (index, started, finished), monotonic
    stop_stream = threading.Event()

    def stream() -> None:
        for index, argument in enumerate(arguments):
            if stop_stream.is_set():
                return
            started = time.monotonic()
            subprocess.run([str(exe), argument], check=True, timeout=30)
            done.append((index, started, time.monotonic()))

    streamer = threading.Thread(target=stream, name="exec-stream")
    streamer.start()
    long_lived: list[subprocess.Popen[bytes]] = []
    long_arguments = [f"0.9{run:06d}{i:04d}" for i in range(3)]
    try:
        wait_for(lambda: len(done) >= 10, timeout=60, what="the first execs of the stream")
        sigterm_at = time.monotonic()
        daemon.stop()  # SIGTERM; waits for the agent to exit (status 0)
        stopped_at = len(done)
        # While the agent is down: long-lived processes, and the stream goes on.
        long_lived = [subprocess.Popen([str(exe), "60", arg]) for arg in long_arguments]
        wait_for(lambda: len(done) >= stopped_at + 3, timeout=60, what="execs while down")
        daemon.start()

        def seen_at_start() -> list[dict[str, Any]]:
            return [
                e
                for e in _probe_events(admin, exe, sha256)
                if _argument(e) in long_arguments and e["data"].get("seen_at_start")
            ]

        wait_for(
            seen_at_start,
            lambda found: len(found) >= len(long_arguments),
            timeout=30,
            what="the processes started while the agent was down, reported at its start",
            every=0.2,
        )
        resumed_at = time.monotonic()  # the sensor is subscribed: the snapshot ran after it
        wait_for(lambda: len(done) >= 1 and done[-1][1] > resumed_at + 2, timeout=60)
    finally:
        stop_stream.set()
        streamer.join(60)
        for process in long_lived:
            process.kill()
            process.wait()

    before_stop = {arguments[i] for i, _, finished in done if finished < sigterm_at}
    after_resume = {arguments[i] for i, started, _ in done if started > resumed_at}
    assert len(before_stop) >= 10
    assert after_resume
    expected = before_stop | after_resume | set(long_arguments)

    def arrived() -> list[dict[str, Any]]:
        return _probe_events(admin, exe, sha256)

    events = wait_for(
        arrived,
        lambda found: expected <= {_argument(e) for e in found},
        timeout=30,
        what="every exec before the stop and after the restart, and the long-lived ones",
        every=0.2,
    )
    counts = Counter(_argument(e) for e in events)
    twice = {arg: n for arg, n in counts.items() if n > 1}
    assert not twice, f"reported more than once: {twice}"
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids))
    unique_pids = [e["data"]["unique_pid"] for e in events]
    assert len(unique_pids) == len(set(unique_pids)), "a process was reported twice"
    for event in events:
        argument = _argument(event)
        # The execs before the stop and after the restart come from the kernel's stream; the
        # long-lived processes started while the agent was down are found at its start (an
        # exec of the stream still running then may be either).
        if argument in before_stop | after_resume:
            assert not event["data"].get("seen_at_start"), event
        elif argument in long_arguments:
            assert event["data"].get("seen_at_start") is True, event
    out = daemon.stop()
    assert "Traceback" not in out
