"""The OS-log sensor: authentication events (sshd, su, sudo) as ``os_log_event``.

Where there is a journal it reads ``journalctl -f -o json`` (the auth and authpriv
facilities) as a child process it supervises; elsewhere it follows a syslog file
(``/var/log/auth.log``) across rotation and truncation.  Both start at the end: what was
logged while the agent was stopped is not read (see docs/agent.md, "Limits"), and event ids
come from the journal cursor or the line's place in the file, so nothing is sent twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from garrison.agent import host
from garrison.agent.sensors import authparse
from garrison.agent.sensors.base import Sensor, SensorUnavailableError, Sink

log = logging.getLogger("garrison.agent.sensors.oslog")

POLL = 0.25  # seconds between two reads of the followed file
READ_MAX = 1024 * 1024  # bytes read per poll: a flood is read over several polls
MAX_LINE = 8192  # a longer line is cut: one writer cannot grow the agent
JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
JOURNAL_DIRS = (Path("/run/log/journal"), Path("/var/log/journal"))
# LOG_AUTH (4) and LOG_AUTHPRIV (10): sshd, su (PAM) and sudo log there.
JOURNAL_MATCHES = ("SYSLOG_FACILITY=4", "SYSLOG_FACILITY=10")
RESTART_MAX = 30.0


def _id(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]


def journal_present() -> bool:
    """journald runs and has written a journal."""
    if not JOURNAL_SOCKET.exists():
        return False
    for directory in JOURNAL_DIRS:
        with contextlib.suppress(OSError):
            if any(directory.rglob("*.journal")):
                return True
    return False


class LogFollower:
    """``tail -F`` of one file: the new complete lines, with their place in the file
    ((device, inode, offset) of the line's start)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: Any = None
        self._ident: tuple[int, int] = (0, 0)
        self._pos = 0
        self._partial = b""
        self.rotations = 0
        self.truncations = 0

    def open(self, at_end: bool) -> bool:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 (kept open while following)
        except OSError:
            return False
        st = os.fstat(handle.fileno())
        self.close()
        self._file, self._ident = handle, (st.st_dev, st.st_ino)
        self._pos = st.st_size if at_end else 0
        self._partial = b""
        return True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _read(self) -> list[tuple[bytes, tuple[int, int, int]]]:
        out: list[tuple[bytes, tuple[int, int, int]]] = []
        if self._file is None:
            return out
        self._file.seek(self._pos)
        data = self._file.read(READ_MAX)
        if not data:
            return out
        start = self._pos - len(self._partial)
        self._pos += len(data)
        buffer = self._partial + data
        lines = buffer.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            out.append((line[:MAX_LINE], (*self._ident, start)))
            start += len(line) + 1
        if len(self._partial) > MAX_LINE:  # no newline for too long: cut it here
            out.append((self._partial[:MAX_LINE], (*self._ident, start)))
            self._partial = b""
        return out

    def poll(self) -> list[tuple[bytes, tuple[int, int, int]]]:
        # Not there at the last poll (rotated away, not created yet): a new file is read
        # from its start.
        if self._file is None and not self.open(at_end=False):
            return []
        out = self._read()
        try:
            st = os.stat(self.path)
        except OSError:
            return out  # rotated away, the new one not there yet: keep the old one open
        if (st.st_dev, st.st_ino) != self._ident:
            out += self._read()  # what was written to the old file before it was renamed
            self.rotations += 1
            self.open(at_end=False)
            out += self._read()
        elif st.st_size < self._pos:
            self.truncations += 1
            self._pos, self._partial = 0, b""
            out += self._read()
        return out


class OsLogSensor(Sensor):
    name = "os_log"

    def __init__(
        self,
        source: str,
        path: str,
        journalctl: str,
        needs_root: bool = True,
        journal_present: Callable[[], bool] = journal_present,
    ) -> None:
        super().__init__()
        self.source = source
        self.path = path
        self.journalctl = journalctl
        self.needs_root = needs_root
        self._journal_present = journal_present
        self.using = ""
        self.journal_restarts = 0
        self._follower: LogFollower | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._cursor: str | None = None
        self._sink: Sink | None = None
        self._host = host.hostname()
        self._os = host.platform_name()

    # -- lifecycle ---------------------------------------------------------------------------

    def _choose(self) -> str:
        command = shutil.which(self.journalctl)
        if self.source == "journal":
            if command is None:
                raise SensorUnavailableError(f"{self.journalctl} not found (os_log_source)")
            return "journal"
        if self.source == "auto" and command is not None and self._journal_present():
            return "journal"
        if self.source not in ("auto", "file"):
            raise SensorUnavailableError(f"unknown os_log_source {self.source!r}")
        if not os.path.isfile(self.path):
            prefix = "no systemd journal here and " if self.source == "auto" else ""
            raise SensorUnavailableError(f"{prefix}{self.path} does not exist")
        return "file"

    def _start(self, sink: Sink) -> None:
        if self.needs_root and os.geteuid() != 0:
            raise SensorUnavailableError("needs root")
        self.using = self._choose()
        self._sink = sink
        if self.using == "file":
            self._follower = LogFollower(self.path)
            if not self._follower.open(at_end=True):
                raise SensorUnavailableError(f"cannot read {self.path}")
            target: Callable[[], None] = self._follow_file
        else:
            self._spawn()
            target = self._follow_journal
        log.info("os-log sensor reading %s", self.path if self.using == "file" else "the journal")
        self._run_thread(target, "sensor-os-log")

    def _stop(self) -> None:
        self._stop_event.set()
        self._kill_child()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._close_child()
        if self._follower is not None:
            self._follower.close()
            self._follower = None

    # -- the file ------------------------------------------------------------------------------

    def _follow_file(self) -> None:
        follower = self._follower
        while follower is not None and not self._stop_event.wait(POLL):
            try:
                lines = follower.poll()
            except OSError as exc:
                self.fail(f"reading {self.path}: {exc.strerror or exc}")
                return
            for raw, (dev, ino, offset) in lines:
                text = raw.decode("utf-8", errors="replace")
                line = authparse.parse_syslog(text)
                if line is not None:
                    record = f"{ino}:{offset}"
                    ident = _id("file", dev, ino, offset, hashlib.sha256(raw).hexdigest())
                    self.handle(line, text, self.path, record, ident)

    # -- the journal ---------------------------------------------------------------------------

    def _command(self) -> list[str]:
        where = ["--after-cursor", self._cursor] if self._cursor else ["--since", "now"]
        return [self.journalctl, "-f", "-o", "json", "--no-pager", *where, *JOURNAL_MATCHES]

    def _spawn(self) -> None:
        try:
            self._child = subprocess.Popen(  # noqa: S603 - the configured journalctl, no shell
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise SensorUnavailableError(
                f"cannot run {self.journalctl}: {exc.strerror or exc}"
            ) from None

    def _kill_child(self) -> None:
        child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(3)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def _close_child(self) -> None:
        if self._child is not None and self._child.stdout is not None:
            self._child.stdout.close()

    def _follow_journal(self) -> None:
        backoff = 1.0
        while not self._stop_event.is_set():
            child = self._child
            if child is None or child.stdout is None:
                return
            started = time.monotonic()
            last_text = ""
            for raw in child.stdout:
                text = raw.decode("utf-8", errors="replace").strip()
                if text.startswith("{"):
                    self._journal_record(text)
                elif text:
                    last_text = text[:300]
                    log.warning("journalctl: %s", last_text)
            code = child.wait()
            child.stdout.close()
            if self._stop_event.is_set():
                return
            # journalctl ended (journald restarted, vacuumed files): run it again from the
            # last cursor, backing off if it keeps dying.
            self.journal_restarts += 1
            backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, RESTART_MAX)
            log.warning("journalctl exited (%s): %s; again in %.0fs", code, last_text, backoff)
            if self.journal_restarts >= 5 and time.monotonic() - started < 5 and not self._cursor:
                self.fail(f"journalctl keeps exiting (code {code}): {last_text or 'no output'}")
                return
            if self._stop_event.wait(backoff):
                return
            try:
                self._spawn()
            except SensorUnavailableError as exc:
                self.fail(str(exc))
                return

    def _journal_record(self, text: str) -> None:
        try:
            record = json.loads(text)
        except ValueError:
            return
        if not isinstance(record, dict):
            return
        cursor = record.get("__CURSOR")
        if isinstance(cursor, str):
            self._cursor = cursor
        line = authparse.journal_line(record)
        if line is not None:
            ident = _id("journal", cursor or text)
            self.handle(line, line.message, "journal", str(cursor or ""), ident)

    # -- events --------------------------------------------------------------------------------

    def handle(
        self, line: authparse.SyslogLine, text: str, channel: str, record: str, ident: str
    ) -> None:
        event = authparse.parse_auth(line.ident, line.message)
        sink = self._sink
        if event is None or sink is None or not sink.allow(self):
            return
        when = line.time if line.time is not None else time.time()
        sink.submit(self, "os_log_event", self.data(line, event, text, channel, record, when),
                    "os-" + ident, when)  # fmt: skip

    def data(
        self,
        line: authparse.SyslogLine,
        event: authparse.AuthEvent,
        text: str,
        channel: str,
        record: str,
        when: float,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "time": when,
            "host": self._host,
            "os": self._os,
            "event_type": "authentication",
            "auth_subtype": event.auth_subtype,
            "result": event.result,
            "provider": line.ident,
            "channel": channel,
            "record_id": record,
            "message": text[:MAX_LINE],
        }
        if event.user:
            data["user"] = event.user
            domain = authparse.user_domain(event.user)
            if domain:
                data["domain"] = domain
        if line.pid is not None:
            data["pid"] = line.pid
        data.update(event.fields)
        header = {
            "ProviderName": line.ident,
            "Channel": channel,
            "EventRecordId": record,
            "Computer": line.host,
            "TimeCreatedSystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),
        }
        if line.pid is not None:
            header["ExecutionProcessID"] = str(line.pid)
        data["header"] = header
        body = {
            "TargetUserName": event.user,
            "IpAddress": event.fields.get("remote_ip"),
            "IpPort": event.fields.get("remote_port"),
            "AuthenticationPackageName": event.fields.get("auth_method"),
            "CommandLine": event.fields.get("command"),
            "FailureReason": event.fields.get("failure_reason"),
            "LogonProcessName": line.ident,
        }
        data["body"] = {k: str(v) for k, v in body.items() if v not in (None, "")}
        return data
