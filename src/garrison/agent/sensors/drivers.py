"""The driver sensor: ``driver_loaded`` for each kernel module loaded.

``/proc/modules`` is read every ``interval`` seconds and compared with the previous read
(:func:`diff`).  Why polling: the kernel has no notification for module loads that a plain
process can subscribe to without tracefs, perf or BPF (the ``module:module_load``
tracepoint) or audit rules (``init_module``/``finit_module``, which would mean fighting
auditd for its socket); reading a ~100-line file once a second costs nothing measurable.
The price: a module loaded and unloaded within one interval is not seen.

The modules present when the sensor starts are reported too (``seen_at_start``): loads
that happened while the agent was down are not lost, and their event ids (boot id, name,
load address, size) are those of the previous run, so a restart duplicates nothing.

The file is found the way ``modinfo -n`` does, without a subprocess: ``modules.dep`` under
``/lib/modules/$(uname -r)`` lists every module file; the module's name is the file's base
name without ``.ko[.xz|.zst|.gz]``, with ``-`` read as ``_``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from garrison.agent import host
from garrison.agent.sensors import procinfo
from garrison.agent.sensors.base import Sensor, SensorUnavailableError, Sink
from garrison.agent.sensors.hashes import HashCache

log = logging.getLogger("garrison.agent.sensors.drivers")

SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


@dataclass(frozen=True)
class Module:
    name: str
    size: int  # bytes of kernel memory
    address: str  # 0x0 when kptr_restrict hides it
    state: str


def parse_modules(text: str) -> dict[str, Module]:
    """``name size refcount deps state address [taint]`` per line."""
    out: dict[str, Module] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        try:
            size = int(fields[1])
        except ValueError:
            continue
        state = fields[4] if len(fields) > 4 else ""
        address = fields[5] if len(fields) > 5 else "0x0"
        out[fields[0]] = Module(fields[0], size, address, state)
    return out


def diff(before: dict[str, Module], after: dict[str, Module]) -> list[Module]:
    """Modules loaded between two reads: new names, and names loaded again (another
    address or size means it was unloaded and loaded in between)."""
    loaded = []
    for name, module in after.items():
        old = before.get(name)
        if old is None or (old.address, old.size) != (module.address, module.size):
            loaded.append(module)
    return loaded


def module_name(path: str) -> str | None:
    base = path.rsplit("/", 1)[-1]
    for suffix in SUFFIXES:
        if base.endswith(suffix):
            return base[: -len(suffix)].replace("-", "_")
    return None


def parse_modules_dep(text: str, root: str) -> dict[str, str]:
    """Module name -> absolute path of its file, from ``modules.dep`` (``path: deps``;
    paths relative to the modules directory, or absolute on some distributions)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        path, sep, _deps = line.partition(":")
        if not sep:
            continue
        path = path.strip()
        name = module_name(path)
        if name is None:
            continue
        out.setdefault(name, path if path.startswith("/") else os.path.join(root, path))
    return out


def event_id(module: Module, boot: str) -> str:
    text = f"driver_loaded|{boot}|{module.name}|{module.address}|{module.size}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class DriverSensor(Sensor):
    name = "driver"

    def __init__(
        self,
        hashes: HashCache,
        interval: float = 1.0,
        proc_modules: str = "/proc/modules",
        modules_root: str | None = None,
        boot: str | None = None,
    ) -> None:
        super().__init__()
        self.hashes = hashes
        self.interval = interval
        self.proc_modules = proc_modules
        self.modules_root = modules_root or os.path.join("/lib/modules", os.uname().release)
        self.boot = boot
        self.known: dict[str, Module] = {}
        self._reloads: dict[str, int] = {}
        self._dep: dict[str, str] = {}
        self._dep_stamp: tuple[int, int] | None = None
        self._sink: Sink | None = None
        self._host = host.hostname()
        self._os = host.platform_name()

    def _start(self, sink: Sink) -> None:
        try:
            current = self.read()
        except OSError as exc:
            raise SensorUnavailableError(
                f"cannot read {self.proc_modules} (a kernel without loadable modules?): "
                f"{exc.strerror or exc}"
            ) from None
        self._sink = sink
        self.known = {}
        self.check(current, at_start=True)
        self._run_thread(self._run, "sensor-driver")

    def _stop(self) -> None:
        self._end_thread()

    def extra_status(self) -> dict[str, int]:
        return {"hash_pending": self.hashes.pending}

    def read(self) -> dict[str, Module]:
        with open(self.proc_modules, encoding="utf-8", errors="replace") as fh:
            return parse_modules(fh.read())

    def _run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                current = self.read()
            except OSError as exc:
                self.fail(f"reading {self.proc_modules}: {exc.strerror or exc}")
                return
            try:
                self.check(current)
            except Exception:
                log.exception("driver sensor: checking the modules crashed")

    def check(self, current: dict[str, Module], at_start: bool = False) -> list[Module]:
        loaded = diff(self.known, current)
        for module in loaded:
            if module.name in self.known:
                self._reloads[module.name] = self._reloads.get(module.name, 0) + 1
        self.known = current
        for module in loaded:
            self.report(module, at_start)
        return loaded

    def module_path(self, name: str) -> str | None:
        dep = os.path.join(self.modules_root, "modules.dep")
        try:
            st = os.stat(dep)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._dep_stamp:
                with open(dep, encoding="utf-8", errors="replace") as fh:
                    self._dep = parse_modules_dep(fh.read(), self.modules_root)
                self._dep_stamp = stamp
        except OSError:
            self._dep, self._dep_stamp = {}, None
        return self._dep.get(name)

    def report(self, module: Module, at_start: bool) -> None:
        sink = self._sink
        if sink is None or not sink.allow(self):
            return
        when = time.time()
        data: dict[str, Any] = {"time": when, "host": self._host, "os": self._os}
        data["module_name"] = module.name
        data["module_memory_size"] = module.size
        if at_start:
            data["seen_at_start"] = True
        path = self.module_path(module.name)
        facts = self.hashes.facts(path) if path is not None else None
        if path is None or facts is None:
            # Built in, out of tree without a modules.dep entry, or its file removed.
            data["unavailable"] = "file_path"
        if path is not None:
            data["file_name"] = path.rsplit("/", 1)[-1]
            data["file_path"] = path
            data["full_name"] = path
        if facts is not None:
            data["size"] = facts.size
            data["modified_at"] = facts.mtime
            if facts.btime is not None:
                data["created_at"] = facts.btime
            data["hash_status"] = facts.status
            if facts.digests is not None:
                data["md5"] = facts.digests.md5
                data["sha256"] = facts.digests.sha256
        boot = self.boot or procinfo.boot_id()
        reloads = self._reloads.get(module.name, 0)
        eid = event_id(module, boot if not reloads else f"{boot}|reload{reloads}")
        sink.submit(self, "driver_loaded", data, eid, when)
