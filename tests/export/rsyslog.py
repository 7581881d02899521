"""A real rsyslog, started by the tests on loopback, with one TCP or TLS input per name,
each writing the raw messages it receives to its own file."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench.certs import Certs
from bench.common import free_port
from tests.support import wait_for

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
LISTEN = "0A"  # the TCP state column of /proc/net/tcp


def _listening_inodes(port: int) -> set[int]:
    """The inodes of the sockets listening on this TCP port (any address, IPv4 or IPv6)."""
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(int(fields[9]))
    return found


def _socket_inodes(pid: int) -> set[int]:
    found: set[int] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


@dataclass
class Rsyslog:
    directory: Path
    inputs: dict[str, tuple[int, bool]]  # name -> (port, tls)
    certs: Certs | None
    relp: frozenset[str] = frozenset()  # names of inputs that speak RELP (imrelp)
    process: subprocess.Popen[bytes] | None = None
    outputs: dict[str, Path] = field(default_factory=dict)

    def config(self) -> str:
        lines = [f'global(workDirectory="{self.directory / "work"}"']
        if self.certs:
            lines[0] += (
                f' DefaultNetstreamDriverCAFile="{self.certs.ca}"'
                f' DefaultNetstreamDriverCertFile="{self.certs.cert}"'
                f' DefaultNetstreamDriverKeyFile="{self.certs.key}"'
            )
        # LEEF 1.0 separates attributes with tabs: a SIEM relay must keep them (rsyslog
        # otherwise writes control characters as #011).
        lines[0] += ' parser.escapeControlCharactersOnReceive="off")'
        lines.append('template(name="raw" type="string" string="%rawmsg%\\n")')
        lines.append('module(load="imtcp" MaxSessions="200")')
        if self.relp:
            lines.append('module(load="imrelp")')
        for name, (port, is_tls) in self.inputs.items():
            out = self.directory / f"{name}.log"
            self.outputs[name] = out
            driver = (
                (' streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon"')
                if is_tls
                else ""
            )
            kind = "imrelp" if name in self.relp else "imtcp"
            lines.append(
                f'input(type="{kind}" port="{port}" address="127.0.0.1" ruleset="rs_{name}"'
                + ("" if name in self.relp else driver)
                + ")"
            )
            lines.append(
                f'ruleset(name="rs_{name}") {{ action(type="omfile" file="{out}" '
                f'template="raw" flushOnTXEnd="on" asyncWriting="off") }}'
            )
        return "\n".join(line for line in lines if line) + "\n"

    def start(self, timeout: float = 20) -> None:
        """Start rsyslogd and wait until it listens on every input.  A port picked free and
        taken by another process before rsyslogd bound it (rsyslogd then runs without that
        input, and whatever took it would receive the test's messages) is picked again."""
        for attempt in range(3):
            stolen = self._start_once(timeout)
            if not stolen:
                return
            self.stop()
            if attempt == 2:
                raise RuntimeError(f"rsyslogd could not bind {sorted(stolen)}: taken each time")
            for name in stolen:
                self.inputs[name] = (free_port(), self.inputs[name][1])

    def _start_once(self, timeout: float) -> list[str]:
        """The names of the inputs whose port another process holds (empty: all rsyslog's)."""
        (self.directory / "work").mkdir(parents=True, exist_ok=True)
        conf = self.directory / "rsyslog.conf"
        conf.write_text(self.config())
        self.process = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(conf), "-i", str(self.directory / "rsyslog.pid")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        for port, _ in self.inputs.values():
            while True:
                if self.process.poll() is not None:
                    out = self.process.stdout.read().decode() if self.process.stdout else ""
                    raise RuntimeError(f"rsyslogd exited: {out}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"rsyslogd is not listening on {port}") from None
                    time.sleep(0.05)
        mine = _socket_inodes(self.process.pid)
        return [
            name for name, (port, _) in self.inputs.items() if not (_listening_inodes(port) & mine)
        ]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def lines(self, name: str) -> list[str]:
        path = self.outputs[name]
        if not path.exists():
            return []
        # rsyslog may be in the middle of writing the last line: only a line that ends in a
        # newline is complete, so a partial one is left for the next poll.
        text = path.read_bytes().decode("utf-8", errors="replace")
        complete = text[: text.rfind("\n") + 1]
        return [line for line in complete.splitlines() if line]

    def wait_lines(
        self, name: str, predicate: Callable[[list[str]], bool], timeout: float = 20
    ) -> list[str]:
        """The lines of input ``name`` once ``predicate`` holds for them."""
        return wait_for(
            partial(self.lines, name), predicate, timeout=timeout, what=f"lines on {name}"
        )


def rsyslog_for(
    directory: Path, names: dict[str, bool], certs: Certs | None, relp: frozenset[str] = frozenset()
) -> Rsyslog:
    return Rsyslog(directory, {n: (free_port(), tls) for n, tls in names.items()}, certs, relp)
