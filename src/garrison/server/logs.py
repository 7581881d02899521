"""The server's log: one line per request and per event of note, on stdout.

JSON lines (one object each: ``timestamp``, ``level``, ``event`` and the fields) for a log
collector, or human-readable lines when stdout is a terminal.  Libraries that log through
the standard ``logging`` module (uvicorn, Alembic) are rendered the same way.

Nothing here logs a secret: the request log has the path without its query string (an
enrollment key or token may be in it) and never a header.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import orjson
import structlog

LEVELS = ("debug", "info", "warning", "error", "critical")

_notes = structlog.get_logger("garrison.notable")


def level_number(level: str) -> int:
    """``GARRISON_LOG_LEVEL`` (any case) as a ``logging`` level; ValueError when unknown."""
    name = level.strip().lower()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
    number: int = getattr(logging, name.upper())
    return number


_STAMPED: list[Any] = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _json(logger: Any, name: str, event: dict[str, Any]) -> str:
    return orjson.dumps(event, default=str).decode()


def _renderer(human: bool) -> Any:
    return structlog.dev.ConsoleRenderer() if human else _json


def configure_structlog(
    level: str, *, human: bool | None = None, stream: TextIO | None = None, cache: bool = True
) -> None:
    """Garrison's own log lines at ``level`` and above to ``stream`` (default: stdout, looked
    up when a logger is made): human-readable when ``human`` (default: when stdout is a
    terminal), JSON otherwise.  ``cache`` freezes each logger on first use (the server
    process); tests that reconfigure logging leave it off."""
    human = (stream or sys.stdout).isatty() if human is None else human
    structlog.configure(
        processors=[*_STAMPED, structlog.processors.format_exc_info, _renderer(human)],
        wrapper_class=structlog.make_filtering_bound_logger(level_number(level)),
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=cache,
    )


def configure(level: str, *, human: bool | None = None, stream: TextIO | None = None) -> None:
    """The server process's logging: Garrison's lines and those of the libraries that use
    the ``logging`` module (uvicorn, Alembic), alike, at ``level`` and above, on stdout."""
    out = stream or sys.stdout
    human = out.isatty() if human is None else human
    configure_structlog(level, human=human, stream=out)
    handler = logging.StreamHandler(out)
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
    log costs the request one attribute read."""

    def __init__(self, level: str) -> None:
        self.enabled = level_number(level) <= logging.INFO
        self._log = structlog.get_logger("garrison.request")

    def write(
        self, method: str, path: str, status: int, started: float, station_id: int | None
    ) -> None:
        ms = round((time.perf_counter() - started) * 1000, 2)
        if station_id is None:
            self._log.info("request", method=method, path=path, status=status, ms=ms)
        else:
            self._log.info(
                "request", method=method, path=path, status=status, ms=ms, station_id=station_id
            )


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
