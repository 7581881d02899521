"""The module sensor: ``module_loaded`` for the shared libraries a new process maps.

It listens to the process sensor's execs (:meth:`ProcessSensor.add_exec_observer`): at the
exec event the kernel has mapped only the image and the dynamic loader, the libraries come
a moment later, so each exec is queued and ``/proc/<pid>/maps`` is read ``delay`` seconds
after it, and once more ``late`` seconds after it (what the process ``dlopen``\\ ed since),
if the process is still the same (its UniquePID).  Best effort: a process gone before the
first read maps nothing we can see.

A library is every executable file mapping other than the image itself.  Reports are
deduplicated per (image, library hash) in a bounded LRU: a busy host that runs the same
binary a thousand times a second reports its libraries once.  The event id is derived from
(boot id, image, library hash) too, so an agent restart duplicates nothing on the server.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from garrison.agent import host
from garrison.agent.sensors import procinfo
from garrison.agent.sensors.base import Sensor, SensorState, SensorUnavailableError, Sink
from garrison.agent.sensors.hashes import FileFacts, HashCache
from garrison.agent.sensors.process import ProcessRecord, ProcessSensor

log = logging.getLogger("garrison.agent.sensors.modules")

QUEUE_MAX = 4096  # execs waiting for their maps read
DEDUPE_SIZE = 16384


@dataclass(frozen=True)
class Mapping:
    path: str
    device: str  # "major:minor" in hex, as maps prints it
    inode: int


def parse_maps(text: str) -> list[Mapping]:
    """The executable file mappings of ``/proc/<pid>/maps``, each file once, in order.
    A line: ``address perms offset dev inode pathname``; the path may hold spaces."""
    seen: set[tuple[str, int]] = set()
    out: list[Mapping] = []
    for line in text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "x" not in fields[1]:
            continue
        path = fields[5].strip()
        if not path.startswith("/"):
            continue  # [vdso], [stack], anonymous
        path = path.removesuffix(" (deleted)")
        try:
            inode = int(fields[4])
        except ValueError:
            continue
        if inode == 0 or (fields[3], inode) in seen:
            continue
        seen.add((fields[3], inode))
        out.append(Mapping(path, fields[3], inode))
    return out


class Lru:
    """A bounded set: the oldest key is forgotten first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[tuple[str, ...], None] = OrderedDict()

    def add(self, key: tuple[str, ...]) -> bool:
        """True when the key is new."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._keys)


def event_id(boot: str, image: str, library: str) -> str:
    text = f"module_loaded|{boot}|{image}|{library}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(order=True)
class _Due:
    due: float
    seq: int
    record: ProcessRecord = field(compare=False)
    late: bool = field(compare=False)


class ModuleSensor(Sensor):
    name = "module"

    def __init__(
        self,
        hashes: HashCache,
        delay: float = 0.05,
        late: float = 1.0,
        dedupe_size: int = DEDUPE_SIZE,
        proc: str = "/proc",
    ) -> None:
        super().__init__()
        self.hashes = hashes
        self.delay, self.late = delay, late
        self.proc = proc
        self.seen = Lru(dedupe_size)  # (image, library hash) reported
        self.mapped = Lru(dedupe_size)  # (image, device, inode) already looked at
        self.source: ProcessSensor | None = None
        self._due: list[_Due] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._sink: Sink | None = None
        self._host = host.hostname()
        self._os = host.platform_name()

    # -- wiring and lifecycle --------------------------------------------------------------

    def connect(self, sensors: Sequence[Sensor]) -> None:
        for sensor in sensors:
            if isinstance(sensor, ProcessSensor):
                self.source = sensor
                sensor.add_exec_observer(self.on_exec)
                return

    def disconnect(self, sensors: Sequence[Sensor]) -> None:
        if self.source is not None:
            self.source.remove_exec_observer(self.on_exec)
            self.source = None

    def _start(self, sink: Sink) -> None:
        source = self.source
        if source is None:
            raise SensorUnavailableError("needs the process sensor (not in this agent)")
        if source.state != SensorState.RUNNING:
            why = f": {source.reason}" if source.reason else ""
            raise SensorUnavailableError(f"needs the process sensor, which is {source.state}{why}")
        self._sink = sink
        self._run_thread(self._run, "sensor-module")

    def _stop(self) -> None:
        self._stop_event.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def extra_status(self) -> dict[str, int]:
        return {"hash_pending": self.hashes.pending}

    # -- the process sensor's side: never waits ------------------------------------------------

    def on_exec(self, record: ProcessRecord) -> None:
        if self.state != SensorState.RUNNING:
            return
        now = time.monotonic()
        with self._cond:
            if len(self._due) >= QUEUE_MAX:
                self.counters.add("dropped_queue")
                return
            heapq.heappush(self._due, _Due(now + self.delay, next(self._seq), record, False))
            self._cond.notify()

    # -- the sensor's thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop_event.is_set():
            with self._cond:
                if not self._due:
                    self._cond.wait(0.5)
                    continue
                wait = self._due[0].due - time.monotonic()
                if wait > 0:
                    self._cond.wait(min(wait, 0.5))
                    continue
                item = heapq.heappop(self._due)
                if not item.late and self.late > self.delay:
                    late_due = item.due - self.delay + self.late
                    heapq.heappush(self._due, _Due(late_due, next(self._seq), item.record, True))
            try:
                self.scan(item.record)
            except Exception:
                log.exception("module sensor: reading the maps of %d crashed", item.record.pid)

    def _same_process(self, record: ProcessRecord) -> bool:
        st = procinfo.read_stat(record.pid)
        return st is not None and procinfo.unique_pid(record.pid, st.start_ticks) == (
            record.unique_pid
        )

    def scan(self, record: ProcessRecord) -> int:
        """Report the new libraries of one process; how many were reported."""
        try:
            with open(f"{self.proc}/{record.pid}/maps", encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            return 0  # gone already: best effort
        if self.proc == "/proc" and not self._same_process(record):
            return 0  # the pid was reused by another process
        image = self._image_key(record)
        image_inode = record.facts.key[1] if record.facts and record.facts.key else None
        reported = 0
        for mapping in parse_maps(text):
            if mapping.path == record.path or mapping.inode == image_inode:
                continue
            if not self.mapped.add((image, mapping.device, str(mapping.inode))):
                continue  # this very file was looked at for this image already
            facts = self.hashes.facts(mapping.path)
            library = (
                facts.digests.sha256
                if facts is not None and facts.digests is not None
                else f"{mapping.path}|{mapping.device}|{mapping.inode}"
            )
            if not self.seen.add((image, library)):
                continue
            if self.report(record, image, mapping, facts, library):
                reported += 1
        return reported

    def _image_key(self, record: ProcessRecord) -> str:
        facts = record.facts
        if facts is not None and facts.digests is not None:
            return facts.digests.sha256
        return record.path or f"pid-{record.unique_pid}"

    def report(
        self,
        record: ProcessRecord,
        image: str,
        mapping: Mapping,
        facts: FileFacts | None,
        library: str,
    ) -> bool:
        sink = self._sink
        if sink is None or not sink.allow(self):
            return False
        when = time.time()
        data: dict[str, Any] = {"time": when, "host": self._host, "os": self._os}
        data["pid"] = record.pid
        data["unique_pid"] = record.unique_pid
        if record.uid is not None:
            data["user"] = procinfo.user_name(record.uid)
        if record.path:
            data["process_file_name"] = record.path.rsplit("/", 1)[-1]
            data["process_file_path"] = record.path
            data["process_full_name"] = record.path
        if record.facts is not None:
            data["process_size"] = record.facts.size
            data["process_modified_at"] = record.facts.mtime
            if record.facts.btime is not None:
                data["process_created_at"] = record.facts.btime
            if record.facts.digests is not None:
                data["process_md5"] = record.facts.digests.md5
                data["process_sha256"] = record.facts.digests.sha256
        data["dll_name"] = mapping.path.rsplit("/", 1)[-1]
        data["dll_path"] = mapping.path
        data["dll_full_name"] = mapping.path
        if facts is not None:
            data["dll_size"] = facts.size
            data["dll_modified_at"] = facts.mtime
            if facts.btime is not None:
                data["dll_created_at"] = facts.btime
            data["dll_hash_status"] = facts.status
            if facts.digests is not None:
                data["dll_md5"] = facts.digests.md5
                data["dll_sha256"] = facts.digests.sha256
        else:
            data["dll_hash_status"] = "unreadable"
        eid = event_id(procinfo.boot_id(), image, library)
        return sink.submit(self, "module_loaded", data, eid, when)
