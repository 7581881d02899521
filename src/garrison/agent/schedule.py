"""Cron schedule of the daemon's tasks (``croniter``), one expression per task."""

from __future__ import annotations

import datetime as dt

from croniter import croniter  # type: ignore[import-untyped,unused-ignore]


class CronSchedule:
    def __init__(self, entries: dict[str, str], now: float) -> None:
        self.entries = dict(entries)
        self._next: dict[str, float] = {}
        start = dt.datetime.fromtimestamp(now, dt.UTC)
        for task, expression in self.entries.items():
            self._next[task] = float(croniter(expression, start).get_next(float))

    def due(self, now: float) -> list[str]:
        """Tasks whose time has come (each once, however late), and schedules their next run."""
        out = []
        for task, when in sorted(self._next.items(), key=lambda kv: kv[1]):
            if when <= now:
                out.append(task)
                start = dt.datetime.fromtimestamp(now, dt.UTC)
                self._next[task] = float(croniter(self.entries[task], start).get_next(float))
        return out

    def next_time(self) -> float | None:
        return min(self._next.values()) if self._next else None
