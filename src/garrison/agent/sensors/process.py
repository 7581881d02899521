"""The process sensor: ``process_started`` at exec, ``process_stopped`` at exit.

The kernel's process connector (:mod:`.procconn`) says *that* a process forked, exec'd or
exited; ``/proc/<pid>`` says *what* it is, read at once on the exec event (the process may
be gone a millisecond later).  What is read at exec is kept in a bounded table by pid: the
exit event (sent after the kernel has released the process's memory and files) and the
process's children take their facts from it.

A process that is gone before it could be read is still reported, with what the kernel
gave (pid, times, parent, exit code) and ``unavailable`` naming what could not be read.

The real uid and gid are not read from ``/proc/<pid>/status`` at every exec (the kernel
builds that whole file for two numbers): they are carried.  A child gets them from the
thread that forked it, and they change only through ``commit_creds``, which sends the
connector's UID/GID events (set*id, setfs*id, the exec of a set-id file; an exec itself
never changes the real ids).  What carrying cannot know is read from /proc instead: a
process whose fork the sensor did not see, a child of a thread other than the main one,
a process one of whose threads changed its own credentials (Linux keeps them per thread),
and every process after the kernel dropped events (the UID event may be among them).
``login_user`` is read at each exec: the audit login uid is set by a write to
``/proc/self/loginuid``, which sends no event.

At start, once subscribed, the sensor reports the running processes no earlier run reported
(``seen_at_start``, :mod:`.reported`); at a graceful stop it reads what the kernel already
queued on the socket before closing it, so the execs before the stop are all reported.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from garrison.agent import host
from garrison.agent.sensors import procinfo
from garrison.agent.sensors.base import Sensor, SensorUnavailableError, Sink
from garrison.agent.sensors.hashes import FileFacts, HashCache
from garrison.agent.sensors.procconn import Exec, Exit, Fork, IdChange, ProcConnector
from garrison.agent.sensors.reported import Reported, running_pids, start_event_id

log = logging.getLogger("garrison.agent.sensors.process")

TABLE_SIZE = 32768
DRAIN_SECONDS = 2.0  # at most this long reading what the kernel queued, at a graceful stop


@dataclass
class ProcessRecord:
    pid: int
    unique_pid: str
    start_time: float | None
    path: str | None
    command_line: str | None
    facts: FileFacts | None
    ppid: int | None = None
    parent_unique_pid: str | None = None
    parent_path: str | None = None
    uid: int | None = None
    gid: int | None = None
    login_uid: int | None = None
    unavailable: list[str] = field(default_factory=list)
    # The fields shared by the exec's and the exit's events, built once at exec (None: not
    # built, or a hash was still pending then and the exit must look again).
    common: dict[str, Any] | None = None


@dataclass(slots=True)
class KnownIds:
    """A live process's real uid and gid, as the sensor follows them (module docstring)."""

    uid: int
    gid: int
    # False once one of its threads other than the main one changed its own credentials:
    # an exec from that thread takes the thread's, so the next exec reads /proc.
    single: bool


def event_id(event_type: str, unique_pid: str, kernel_ns: int) -> str:
    """Stable for one kernel event: queued twice (a retry, a restart that re-reads it), it
    is stored once, in the spool and on the server."""
    text = f"{event_type}|{unique_pid}|{kernel_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _file_fields(prefix: str, path: str | None, facts: FileFacts | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if path:
        name = path.rsplit("/", 1)[-1]
        out[f"{prefix}file_name"] = name
        out[f"{prefix}file_path"] = path
        out[f"{prefix}full_name"] = path
    if facts is not None:
        out[f"{prefix}size"] = facts.size
        out[f"{prefix}modified_at"] = facts.mtime
        if facts.btime is not None:
            out[f"{prefix}created_at"] = facts.btime
        if facts.digests is not None:
            out[f"{prefix}md5"] = facts.digests.md5
            out[f"{prefix}sha256"] = facts.digests.sha256
    return out


class ProcessSensor(Sensor):
    name = "process"

    def __init__(
        self,
        hashes: HashCache,
        redact: list[str],
        rcvbuf: int,
        needs_root: bool = True,
    ) -> None:
        super().__init__()
        self.hashes = hashes
        self.redact = procinfo.redactor(redact)
        self.environ = procinfo.EnvironReader(self.redact)
        self.rcvbuf = rcvbuf
        self.needs_root = needs_root
        self.table: OrderedDict[int, ProcessRecord] = OrderedDict()
        self.forked_from: OrderedDict[int, int] = OrderedDict()  # child tgid -> parent tgid
        self.ids: dict[int, KnownIds] = {}  # tgid -> real ids, carried (module docstring)
        self.ids_carried = 0  # execs whose ids came from the table, not from /proc
        self.ids_read = 0
        self._sink: Sink | None = None
        self._conn: ProcConnector | None = None
        self._host = host.hostname()
        self._os = host.platform_name()
        self._wall_offset = time.time() - time.monotonic()
        self._exec_observers: list[Callable[[ProcessRecord], None]] = []
        # ENOBUFS read from the connector: a sign, not a count (the count is in overflows).
        self.enobufs = 0
        # The live processes reported, kept in the state dir across restarts (use_state).
        self.reported = Reported()
        # UniquePID -> when the start snapshot read it (CLOCK_MONOTONIC ns): an exec the
        # kernel queued before that read is the image the snapshot reported already.
        self._at_start: dict[str, int] = {}
        self._at_start_until = 0
        self.seen_at_start = 0

    def use_state(self, directory: Path) -> None:
        self.reported = Reported(directory)

    def add_exec_observer(self, observe: Callable[[ProcessRecord], None]) -> None:
        """``observe(record)`` is called on this sensor's thread after each exec it
        reports (the module sensor's hook): it must return at once (queue, not work)."""
        self._exec_observers = [*self._exec_observers, observe]

    def remove_exec_observer(self, observe: Callable[[ProcessRecord], None]) -> None:
        # A new list, not an in-place removal: this sensor's thread may be iterating it.
        self._exec_observers = [o for o in self._exec_observers if o != observe]

    # -- lifecycle ---------------------------------------------------------------------------

    def _start(self, sink: Sink) -> None:
        if not hasattr(os, "geteuid") or not os.path.isdir("/proc/self"):
            raise SensorUnavailableError("needs Linux (the kernel process connector)")
        if self.needs_root and os.geteuid() != 0:
            raise SensorUnavailableError("needs root")
        try:
            self._conn = ProcConnector(self.rcvbuf)
        except OSError as exc:
            raise SensorUnavailableError(
                f"the kernel process connector is unavailable: {exc.strerror or exc}"
            ) from None
        log.info("process connector subscribed, receive buffer %d bytes", self._conn.rcvbuf)
        self._sink = sink
        # Before the reading thread, so start() returns once it is done (what the kernel
        # sends meanwhile waits on the subscribed socket).
        try:
            self.snapshot()
        except Exception:
            log.exception("process sensor: the start snapshot crashed")
        self._run_thread(self._run, "sensor-process")

    def _stop(self) -> None:
        self._end_thread()
        conn, self._conn = self._conn, None
        if conn is not None:
            self._drain(conn)
            conn.close()
        self.reported.save()

    def extra_status(self) -> dict[str, int]:
        return {"hash_pending": self.hashes.pending}

    def _run(self) -> None:
        conn = self._conn
        if conn is None:
            return
        while not self._stop_event.is_set():
            try:
                events = conn.recv()
            except OSError as exc:
                self.fail(f"reading the process connector: {exc.strerror or exc}")
                return
            self._handle_all(conn, events)
            self.reported.save_if_due()

    def _handle_all(self, conn: ProcConnector, events: list[Any]) -> None:
        # What the kernel dropped, counted in events: the gaps in its sequence numbers
        # (exact; an ENOBUFS alone says only that some were lost).
        lost, enobufs = conn.lost, conn.overflows
        if lost or enobufs:
            conn.lost = conn.overflows = 0
            self.ids.clear()  # a UID/GID event may be among the lost: read them again
            self.counters.add("overflows", lost)
            self.enobufs += enobufs
            log.warning("process connector overflow: the kernel dropped events (counted)")
        for event in events:
            try:
                self.handle(event)
            except Exception:
                log.exception("process sensor: handling %r crashed", event)

    def _drain(self, conn: ProcConnector) -> None:
        """A graceful stop: handle what the kernel queued on the socket before it (an exec
        just before SIGTERM), bounded in time on a host that keeps exec'ing."""
        deadline = time.monotonic() + DRAIN_SECONDS
        try:
            while time.monotonic() < deadline:
                overflows = conn.overflows
                events = conn.recv(timeout=0.05)
                if not events and conn.overflows == overflows:
                    break  # nothing left (a timeout)
                self._handle_all(conn, events)
        except OSError as exc:
            log.warning("process sensor: draining the connector at stop: %s", exc)

    def snapshot(self) -> None:
        """Report the processes running now that no earlier run reported (``seen_at_start``);
        called once subscribed, so an exec after this read is in the kernel's stream."""
        sink = self._sink
        if sink is None:
            return
        before = self.reported.load()
        self.reported.live.clear()
        for pid in running_pids():
            read_ns = time.monotonic_ns()
            dir_fd = procinfo.open_dir(pid)
            if dir_fd is None:
                continue  # gone meanwhile
            try:
                self._snapshot_one(sink, before, pid, read_ns, dir_fd)
            finally:
                os.close(dir_fd)
        self._at_start_until = time.monotonic_ns() + 5_000_000_000
        self.reported.save()
        log.info("process sensor: %d running process(es) reported at start", self.seen_at_start)

    def _snapshot_one(
        self, sink: Sink, before: dict[str, str], pid: int, read_ns: int, dir_fd: int
    ) -> None:
        record = self.read_process(pid, read_ns, dir_fd=dir_fd)
        if "start_time" in record.unavailable or (
            record.path is None and record.command_line is None
        ):
            self.ids.pop(pid, None)
            return  # gone meanwhile, or a kernel thread
        self._remember(record)
        if before.get(record.unique_pid) == (record.path or ""):
            self.reported.add(record.unique_pid, record.path)  # reported by a previous run
            return
        self._at_start[record.unique_pid] = read_ns
        if not sink.allow(self):
            return
        self.seen_at_start += 1
        self._report_started(
            sink,
            record,
            pid,
            self._wall(read_ns),
            start_event_id(record.unique_pid, record.path),
            dir_fd,
            at_start=True,
        )

    # -- events --------------------------------------------------------------------------------

    def handle(self, event: object) -> None:
        if isinstance(event, Fork):
            if event.child_pid == event.child_tgid:  # a process, not a thread
                self._remember_fork(event.child_tgid, event.parent_tgid)
                self._inherit_ids(event)
        elif isinstance(event, Exec):
            if event.pid == event.tgid:
                self.on_exec(event)
        elif isinstance(event, Exit):
            if event.pid == event.tgid:
                self.on_exit(event)
        elif isinstance(event, IdChange):
            self.on_id_change(event)

    def _inherit_ids(self, event: Fork) -> None:
        """The child holds the credentials of the thread that forked it: carried when that
        is the parent's main thread and its ids are known; otherwise read at its exec."""
        ids = self.ids
        known = ids.get(event.parent_tgid) if event.parent_pid == event.parent_tgid else None
        if known is None:
            ids.pop(event.child_tgid, None)  # a reused pid's stale entry
            return
        ids[event.child_tgid] = KnownIds(known.uid, known.gid, True)
        if len(ids) > TABLE_SIZE:
            del ids[next(iter(ids))]  # the oldest first

    def on_id_change(self, event: IdChange) -> None:
        known = self.ids.get(event.tgid)
        if known is None:
            return  # not followed: its next exec reads /proc
        if event.pid != event.tgid:
            known.single = False  # one thread's own credentials
        elif event.gid:
            known.gid = event.real
        else:
            known.uid = event.real

    def _ids(self, pid: int, dir_fd: int | None) -> tuple[int, int] | None:
        """The real uid and gid of ``pid`` now: carried, or read from /proc (and followed
        from then on)."""
        known = self.ids.get(pid)
        if known is not None and known.single:
            self.ids_carried += 1
            return known.uid, known.gid
        found = procinfo.read_status_ids(pid, dir_fd) if dir_fd is not None else None
        if found is None:
            self.ids.pop(pid, None)
            return None
        self.ids_read += 1
        uid, gid, threads = found
        self.ids[pid] = KnownIds(uid, gid, threads <= 1)
        if len(self.ids) > TABLE_SIZE:
            del self.ids[next(iter(self.ids))]
        return uid, gid

    def _remember_fork(self, child: int, parent: int) -> None:
        self.forked_from[child] = parent
        self.forked_from.move_to_end(child)
        while len(self.forked_from) > TABLE_SIZE:
            self.forked_from.popitem(last=False)

    def _remember(self, record: ProcessRecord) -> None:
        self.table[record.pid] = record
        self.table.move_to_end(record.pid)
        while len(self.table) > TABLE_SIZE:
            self.table.popitem(last=False)

    def _wall(self, kernel_ns: int) -> float:
        # The connector's timestamp is CLOCK_MONOTONIC (ktime_get_ns).
        return kernel_ns / 1e9 + self._wall_offset

    def read_process(
        self, pid: int, kernel_ns: int, with_parent: bool = True, dir_fd: int | None = None
    ) -> ProcessRecord:
        """Everything /proc still says about ``pid``, now.  ``dir_fd``: its ``/proc/<pid>``
        opened by the caller (otherwise opened and closed here)."""
        if dir_fd is not None:
            return self._read_process(pid, kernel_ns, with_parent, dir_fd)
        own = procinfo.open_dir(pid)
        try:
            return self._read_process(pid, kernel_ns, with_parent, own)
        finally:
            if own is not None:
                os.close(own)

    def _read_process(
        self, pid: int, kernel_ns: int, with_parent: bool, dir_fd: int | None
    ) -> ProcessRecord:
        # dir_fd None: /proc/<pid> is gone; nothing is read but the carried ids.
        missing: list[str] = []
        stat = procinfo.read_stat(pid, dir_fd) if dir_fd is not None else None
        if stat is not None:
            uid_text = procinfo.unique_pid(pid, stat.start_ticks)
            start: float | None = stat.start_time
        else:
            # Gone and reaped: the kernel's event time stands in for the start time.
            uid_text = f"{procinfo.boot_id()}-{pid}-ns{kernel_ns}"
            start = None
            missing.append("start_time")
        path = procinfo.read_link(pid, "exe", dir_fd) if dir_fd is not None else None
        facts = self.hashes.facts("exe", dir_fd) if path is not None else None
        if path is None:
            missing.append("file_path")
        if facts is None or facts.digests is None:
            missing.append("sha256")
        command_line = procinfo.read_cmdline(pid, dir_fd) if dir_fd is not None else None
        if command_line is None:
            missing.append("command_line")
        ids = self._ids(pid, dir_fd)
        if ids is None:
            missing.append("user")
        login_uid = procinfo.read_login_uid(pid, dir_fd) if dir_fd is not None else None
        record = ProcessRecord(
            pid=pid,
            unique_pid=uid_text,
            start_time=start,
            path=path.removesuffix(" (deleted)") if path else None,
            command_line=command_line,
            facts=facts,
            ppid=stat.ppid if stat is not None else self.forked_from.get(pid),
            uid=ids[0] if ids else None,
            gid=ids[1] if ids else None,
            login_uid=login_uid,
            unavailable=missing,
        )
        if with_parent and record.ppid:
            parent = self.parent_of(record.ppid, kernel_ns)
            record.parent_unique_pid = parent.unique_pid
            record.parent_path = parent.path
        return record

    def parent_of(self, ppid: int, kernel_ns: int) -> ProcessRecord:
        known = self.table.get(ppid)
        if known is not None:
            return known
        # A parent that exec'd before the agent started: read it once, keep it.
        parent = self.read_process(ppid, kernel_ns, with_parent=False)
        if "start_time" not in parent.unavailable:
            self._remember(parent)
        return parent

    def _common(self, record: ProcessRecord, when: float) -> dict[str, Any]:
        data: dict[str, Any] = {"time": when, "host": self._host, "os": self._os, "pid": record.pid}
        data["unique_pid"] = record.unique_pid
        if record.uid is not None:
            data["uid"] = record.uid
            data["user"] = procinfo.user_name(record.uid)
        if record.gid is not None:
            data["gid"] = record.gid
            data["user_group"] = procinfo.group_name(record.gid)
        if record.login_uid is not None:
            data["login_user"] = procinfo.user_name(record.login_uid)
        if record.start_time is not None:
            data["start_time"] = record.start_time
        if record.command_line is not None:
            data["command_line"] = record.command_line
        facts = self._fresh_facts(record)
        data.update(_file_fields("", record.path, facts))
        settled = True  # no hash pending: the exit may reuse these fields as they are
        if facts is not None:
            data["hash_status"] = facts.status
            settled = facts.status != "pending"
        if record.ppid:
            data["parent_pid"] = record.ppid
            parent = self.table.get(record.ppid)
            if record.parent_unique_pid:
                data["parent_unique_pid"] = record.parent_unique_pid
            if record.parent_path:
                data["parent_path"] = record.parent_path
            if parent is not None and parent.unique_pid == record.parent_unique_pid:
                parent_facts = self._fresh_facts(parent)
                if parent_facts is not None and parent_facts.status == "pending":
                    settled = False
                if parent_facts is not None and parent_facts.digests is not None:
                    data["parent_md5"] = parent_facts.digests.md5
                    data["parent_sha256"] = parent_facts.digests.sha256
                if parent.command_line is not None:
                    data["parent_command_line"] = parent.command_line
        if settled:
            record.common = data
        return data

    def _fresh_facts(self, record: ProcessRecord) -> FileFacts | None:
        """A pending hash may be ready by now: take it from the cache."""
        facts = record.facts
        if facts is None or facts.status != "pending" or record.path is None:
            return facts
        digests = self.hashes.get_for(facts)
        if digests is None:
            return facts
        record.facts = replace(facts, status="ok", digests=digests)
        return record.facts

    def on_exec(self, event: Exec) -> None:
        sink = self._sink
        if sink is None or not sink.allow(self):
            # Its exit must not borrow the parent's image as a fork without exec does: the
            # process runs an image nobody read (the sensors benchmark found stops of
            # rate-limited execs named after their parent, python, not /bin/true).
            self.forked_from.pop(event.pid, None)
            self.table.pop(event.pid, None)
            return
        dir_fd = procinfo.open_dir(event.pid)
        try:
            record = self._read_process(event.pid, event.timestamp_ns, True, dir_fd)
            self._remember(record)
            if self._at_start:
                if event.timestamp_ns > self._at_start_until:
                    self._at_start = {}
                elif self._at_start.get(record.unique_pid, -1) >= event.timestamp_ns:
                    return  # exec'd before the start snapshot read it: reported there
            self._report_started(
                sink,
                record,
                event.pid,
                self._wall(event.timestamp_ns),
                event_id("process_started", record.unique_pid, event.timestamp_ns),
                dir_fd,
            )
        finally:
            if dir_fd is not None:
                os.close(dir_fd)

    def _report_started(
        self,
        sink: Sink,
        record: ProcessRecord,
        pid: int,
        when: float,
        the_id: str,
        dir_fd: int | None,
        at_start: bool = False,
    ) -> None:
        data = self._common(record, when)
        if record.common is data:
            record.common = data.copy()  # the exit's, without what follows (exec only)
        cwd = procinfo.read_link(pid, "cwd", dir_fd) if dir_fd is not None else None
        if cwd is not None:
            data["working_directory"] = cwd
        else:
            record.unavailable.append("working_directory")
        environment = self.environ.read(pid, dir_fd) if dir_fd is not None else None
        if environment is not None:
            data["environment"] = environment
        else:
            record.unavailable.append("environment")
        if record.unavailable:
            data["unavailable"] = ",".join(record.unavailable)
        if at_start:
            data["seen_at_start"] = True
        sink.submit(self, "process_started", data, the_id, when)
        self.reported.add(record.unique_pid, record.path)
        if at_start:
            return  # the module sensor follows new execs, not what ran before the agent
        for observe in self._exec_observers:
            try:
                observe(record)
            except Exception:
                log.exception("process sensor: an exec observer crashed")

    def on_exit(self, event: Exit) -> None:
        sink = self._sink
        if sink is None or not sink.allow(self):
            gone = self.table.pop(event.pid, None)
            if gone is not None:
                self.reported.discard(gone.unique_pid)
            self.forked_from.pop(event.pid, None)
            self.ids.pop(event.pid, None)
            return
        record = self.table.pop(event.pid, None)
        parent_tgid = self.forked_from.pop(event.pid, None)
        if record is None:
            record = self._record_at_exit(event, parent_tgid)
        self.ids.pop(event.pid, None)  # after _record_at_exit, which may use it
        self.reported.discard(record.unique_pid)
        when = self._wall(event.timestamp_ns)
        data = record.common
        if data is not None:
            # Built at exec, nothing pending since: the record is out of the table, so its
            # dict is this event's (the parent's fields are those of the exec, even when
            # the parent has exited since).
            record.common = None
            data["time"] = when
        else:
            data = self._common(record, when)
        data["end_time"] = when
        if event.code is not None:
            data["exit_code"] = event.code
        if event.killed_by is not None:
            data["exit_signal"] = event.killed_by
        unavailable = [
            f for f in record.unavailable if f not in ("working_directory", "environment")
        ]
        if unavailable:
            data["unavailable"] = ",".join(unavailable)
        sink.submit(
            self,
            "process_stopped",
            data,
            event_id("process_stopped", record.unique_pid, event.timestamp_ns),
            when,
        )

    def _record_at_exit(self, event: Exit, parent_tgid: int | None) -> ProcessRecord:
        """A process the sensor did not see exec: started before the agent, or forked
        without exec (it runs its parent's image).  Its memory is gone at exit: /proc
        still has its stat while it is a zombie."""
        missing: list[str] = []
        stat = procinfo.read_stat(event.pid)
        if stat is not None:
            uid_text = procinfo.unique_pid(event.pid, stat.start_ticks)
            start: float | None = stat.start_time
        else:
            uid_text = f"{procinfo.boot_id()}-{event.pid}-ns{event.timestamp_ns}"
            start = None
            missing.append("start_time")
        ppid = event.parent_tgid or parent_tgid or (stat.ppid if stat else None)
        image = self.table.get(parent_tgid) if parent_tgid else None
        known = self.ids.get(event.pid)
        ids: tuple[int, int] | None
        if known is not None and known.single:
            ids = known.uid, known.gid
        else:
            found = procinfo.read_status_ids(event.pid)
            ids = found[:2] if found is not None else None
        record = ProcessRecord(
            pid=event.pid,
            unique_pid=uid_text,
            start_time=start,
            path=image.path if image else None,
            command_line=image.command_line if image else None,
            facts=image.facts if image else None,
            ppid=ppid,
            uid=ids[0] if ids else None,
            gid=ids[1] if ids else None,
            unavailable=missing,
        )
        if image is None:
            missing += ["file_path", "sha256", "command_line"]
        if ids is None:
            missing.append("user")
        if ppid:
            parent = self.table.get(ppid)
            if parent is not None:
                record.parent_unique_pid = parent.unique_pid
                record.parent_path = parent.path
        return record
