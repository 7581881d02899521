"""Which running processes the process sensor has reported, kept across agent restarts.

The kernel's process connector only tells about execs while the agent listens: a process
started while the agent was stopped would never be reported.  So at start the process
sensor reads ``/proc`` and reports every running process that no earlier run reported
(``seen_at_start``); to repeat none, it keeps the processes it reported that are still
running (UniquePID -> image path) in ``process-reported.json`` in the agent's state dir,
written at a graceful stop and every :data:`SAVE_EVERY` seconds while it runs.

A process is "already reported" when its UniquePID (boot id, pid, start time) is in the file
with the same image path: one that exec'd another image while the agent was down is
reported again, with its new image.  The file of another boot is ignored (its UniquePIDs
cannot match).  An agent killed outright (no graceful stop) may report again the processes
it reported within the last :data:`SAVE_EVERY` seconds, under another event id: the one
known way to a duplicate, documented in docs/agent.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from garrison.agent.sensors import procinfo
from garrison.agent.state import write_private

log = logging.getLogger("garrison.agent.sensors.process")

FILE_NAME = "process-reported.json"
SAVE_EVERY = 5.0  # seconds between two saves while running (only when something changed)
MAX_ENTRIES = 65536  # a missed exit (an overflow) must not grow the file without bound


def running_pids(proc: str = "/proc") -> Iterator[int]:
    """The process ids (thread group leaders) in /proc now."""
    try:
        names = os.listdir(proc)
    except OSError:
        return
    for name in names:
        if name.isdigit():
            yield int(name)


def start_event_id(unique_pid: str, path: str | None) -> str:
    """The id of a ``seen_at_start`` process_started: the same for the same process and
    image, so two starts that both report it (a crash between) store it once."""
    text = f"process_started|{unique_pid}|{path or ''}|seen_at_start"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Reported:
    """The live processes reported (UniquePID -> image path), bounded, saved atomically."""

    def __init__(self, directory: Path | None = None) -> None:
        self.path = directory / FILE_NAME if directory is not None else None
        self.live: OrderedDict[str, str] = OrderedDict()
        self._dirty = False
        self._saved_at = time.monotonic()

    def load(self) -> dict[str, str]:
        """What the previous run left (empty: none, another boot, or unreadable)."""
        if self.path is None:
            return {}
        try:
            raw = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("process sensor: ignoring %s: %s", self.path, exc)
            return {}
        if not isinstance(raw, dict) or raw.get("boot_id") != procinfo.boot_id():
            return {}
        live = raw.get("live")
        if not isinstance(live, dict):
            return {}
        return {str(k): str(v) for k, v in live.items()}

    def add(self, unique_pid: str, path: str | None) -> None:
        self.live[unique_pid] = path or ""
        self.live.move_to_end(unique_pid)
        while len(self.live) > MAX_ENTRIES:
            self.live.popitem(last=False)
        self._dirty = True

    def discard(self, unique_pid: str) -> None:
        if self.live.pop(unique_pid, None) is not None:
            self._dirty = True

    def save_if_due(self) -> None:
        if self._dirty and time.monotonic() - self._saved_at >= SAVE_EVERY:
            self.save()

    def save(self) -> None:
        self._saved_at = time.monotonic()
        if self.path is None:
            return
        body = {"boot_id": procinfo.boot_id(), "live": dict(self.live)}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_private(self.path, json.dumps(body).encode())
        except OSError as exc:
            log.warning("process sensor: could not save %s: %s", self.path, exc)
            return
        self._dirty = False
