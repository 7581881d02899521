"""The server's log: one line per request and per event of note, on stdout.

JSON lines (one object each: ``timestamp``, ``level``, ``event`` and the fields) for a log
collector, or human-readable lines when stdout is a terminal.  Libraries that log through
the standard ``logging`` module (uvicorn, Alembic) are rendered the same way.

Every line goes through one ``Output``, under one lock, so lines from the event loop and
from worker threads never interleave.  Events of note are written and flushed at once.  The
request lines (one per HTTP request, at ``info``) are the volume: in JSON they are built
without structlog's processor chain and buffered, then written by a background thread every
``FLUSH_SECONDS`` or sooner when ``BUFFER_BYTES`` are pending, before any line of note (so
the output stays in order), and at exit.  A crash loses at most that interval of request
lines (``bench.request_log`` measured the per-line write and flush, and structlog's chain,
as a fifth of the check-in rate).

Nothing here logs a secret: the request log has the path without its query string (an
enrollment key or token may be in it) and never a header.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, TextIO

import orjson
import structlog

LEVELS = ("debug", "info", "warning", "error", "critical")
# At most this long, or this many bytes, between a request and its line reaching stdout.
FLUSH_SECONDS = 0.5
BUFFER_BYTES = 1024 * 1024

_notes = structlog.get_logger("garrison.notable")


def level_number(level: str) -> int:
    """``GARRISON_LOG_LEVEL`` (any case) as a ``logging`` level; ValueError when unknown."""
    name = level.strip().lower()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
    number: int = getattr(logging, name.upper())
    return number


class Output:
    """The process's log stream (``stream``, or stdout looked up at each write, as pytest
    swaps it): ``line`` writes at once, ``buffered`` queues a request line for the flusher
    thread.  Writes hold the lock, so a stdout that cannot keep up slows the requests that
    log instead of growing the buffer without bound."""

    def __init__(
        self,
        stream: TextIO | None,
        *,
        human: bool,
        interval: float = FLUSH_SECONDS,
        limit: int = BUFFER_BYTES,
    ) -> None:
        self.human = human
        self.interval = interval
        self._stream = stream
        self._limit = limit
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._size = 0
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None
        self._closed = False

    def line(self, text: str) -> None:
        """Write one line now, after the request lines still pending."""
        with self._lock:
            self._write(text + "\n")

    def buffered(self, line: bytes) -> None:
        """Queue one request line (``\\n``-terminated UTF-8); written within ``interval``."""
        with self._lock:
            if self._closed or self.interval <= 0:
                self._pending.append(line)
                self._write("")
                return
            self._pending.append(line)
            size = self._size + len(line)
            self._size = size
            # Wake the flusher once, as the buffer fills: Event.set costs a lock round trip.
            full = size >= self._limit > size - len(line)
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._run, name="garrison-log-flush", daemon=True
                )
                self._flusher.start()
        if full:
            self._wake.set()

    def flush(self) -> None:
        """Write the pending request lines now."""
        with self._lock:
            if self._pending:
                self._write("")

    def close(self) -> None:
        """Stop the flusher and write what is pending; later lines are written at once."""
        with self._lock:
            self._closed = True
            flusher = self._flusher
        self._wake.set()
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join(timeout=max(1.0, 4 * self.interval))
        self.flush()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def _write(self, text: str) -> None:
        """With the lock held: the pending request lines, then ``text``, flushed."""
        if self._pending:
            text = b"".join(self._pending).decode() + text
            self._pending = []
            self._size = 0
        out = self._stream or sys.stdout
        try:
            out.write(text)
            out.flush()
        except (OSError, ValueError):
            # A closed or broken stdout: the lines have nowhere to go, and saying so would
            # need the same stdout.  Requests must not fail for it.
            pass

    # structlog calls its logger's method named for the level with the rendered line.
    def msg(self, message: str) -> None:
        self.line(message)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


_output: Output | None = None


def output() -> Output:
    """The process's log output (stdout, JSON unless it is a terminal, until configured)."""
    global _output
    found = _output
    if found is None:
        found = _output = Output(None, human=sys.stdout.isatty())
    return found


def flush() -> None:
    """Write the pending request lines (the server's shutdown calls it)."""
    if _output is not None:
        _output.flush()


def _install(new: Output) -> None:
    global _output
    old, _output = _output, new
    if old is not None:
        old.close()


@atexit.register
def _close_at_exit() -> None:
    if _output is not None:
        _output.close()


_STAMPED: list[Any] = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _json(logger: Any, name: str, event: dict[str, Any]) -> str:
    return orjson.dumps(event, default=str).decode()


def _renderer(human: bool) -> Any:
    return structlog.dev.ConsoleRenderer() if human else _json


def configure_structlog(
    level: str,
    *,
    human: bool | None = None,
    stream: TextIO | None = None,
    cache: bool = True,
    flush_seconds: float = FLUSH_SECONDS,
) -> None:
    """Garrison's own log lines at ``level`` and above to ``stream`` (default: stdout, looked
    up at each write): human-readable when ``human`` (default: when stdout is a terminal),
    JSON otherwise, request lines buffered up to ``flush_seconds``.  ``cache`` freezes each
    logger on first use (the server process); tests that reconfigure logging leave it off."""
    human = (stream or sys.stdout).isatty() if human is None else human
    out = Output(stream, human=human, interval=flush_seconds)
    _install(out)
    structlog.configure(
        processors=[*_STAMPED, structlog.processors.format_exc_info, _renderer(human)],
        wrapper_class=structlog.make_filtering_bound_logger(level_number(level)),
        logger_factory=lambda *_args: out,
        cache_logger_on_first_use=cache,
    )


class _Handler(logging.Handler):
    """The ``logging`` module's records (uvicorn, Alembic), through the same output."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            output().line(self.format(record))
        except Exception:
            self.handleError(record)


def configure(
    level: str,
    *,
    human: bool | None = None,
    stream: TextIO | None = None,
    flush_seconds: float = FLUSH_SECONDS,
) -> None:
    """The server process's logging: Garrison's lines and those of the libraries that use
    the ``logging`` module (uvicorn, Alembic), alike, at ``level`` and above, on stdout."""
    human = (stream or sys.stdout).isatty() if human is None else human
    configure_structlog(level, human=human, stream=stream, flush_seconds=flush_seconds)
    handler = _Handler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _renderer(human),
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_STAMPED],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_number(level))


class RequestLog:
    """One line per HTTP request: method, path, status, latency and, when the request
    authenticated as one, the station.  ``enabled`` is decided once, at start: a disabled
    log costs the request one attribute read.  Called on the event loop."""

    def __init__(self, level: str) -> None:
        self.enabled = level_number(level) <= logging.INFO
        # (second, its ISO 8601 text): one strftime a second, not one per request.  A tuple,
        # replaced whole, so a reader on another thread never pairs a second with another's text.
        self._second: tuple[int, str] = (-1, "")

    def write(
        self, method: str, path: str, status: int, started: float, station_id: int | None
    ) -> None:
        ms = round((time.perf_counter() - started) * 1000, 2)
        line: dict[str, Any] = {
            "timestamp": self.timestamp(time.time()),
            "level": "info",
            "event": "request",
            "method": method,
            "path": path,
            "status": status,
            "ms": ms,
        }
        if station_id is not None:
            line["station_id"] = station_id
        out = output()
        if out.human:
            out.line(_human(line))
            return
        try:
            encoded = orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)
        except orjson.JSONEncodeError:
            # A path with a lone surrogate is not UTF-8: log it escaped.
            line["path"] = path.encode("utf-8", "backslashreplace").decode()
            encoded = orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)
        out.buffered(encoded)

    def timestamp(self, now: float) -> str:
        """``now`` (seconds since the epoch) as UTC ISO 8601 to the millisecond."""
        second = int(now)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = cached
        return cached[1] + _MILLIS[int((now - second) * 1000)]


# ".000Z" to ".999Z": indexing is a third of the cost of formatting the number each time.
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


_console: Any = None


def _human(line: dict[str, Any]) -> str:
    global _console
    if _console is None:
        _console = structlog.dev.ConsoleRenderer()
    rendered: str = _console(None, "info", dict(line))
    return rendered


# -- events of note: one call at the place each is decided --------------------------------


def enrolled(station_id: int, uuid: str, created: bool) -> None:
    _notes.info("station enrolled", station_id=station_id, uuid=uuid, created=created)


def authorization_failed(station_id: int | None, address: str, reason: str) -> None:
    """A refused enrollment key, a denied or conflicting re-enrollment, a bad station token."""
    _notes.warning(
        "station authorization failed", station_id=station_id, address=address, reason=reason
    )


def authentication_refused(method: str, path: str, reason: str) -> None:
    """A 401: no, malformed or wrong credentials."""
    _notes.info("authentication refused", method=method, path=path, reason=reason)


def threats_detected(station_id: int, viruses: Sequence[str]) -> None:
    """New threats a station reported (Critical events): one line per report, names capped."""
    _notes.warning(
        "threats detected",
        severity="Critical",
        station_id=station_id,
        count=len(viruses),
        threats=list(viruses[:20]),
    )
