"""The dashboard's threats-over-time chart, drawn on the server as SVG: no chart library,
no script, and it reads the same with the Content-Security-Policy's ``style-src 'self'``
(SVG presentation attributes, no inline style)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    day: str
    count: int
    x: float
    y: float
    height: float


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    width: int
    height: int
    bar_width: float
    peak: int


def daily(
    counts: dict[str, int], days: int, today: dt.date, width: int = 700, height: int = 180
) -> Chart:
    """One bar per day for the last ``days`` days, ending ``today``."""
    labels = [(today - dt.timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
    peak = max([counts.get(d, 0) for d in labels] + [1])
    slot = width / days
    plot = height - 20  # room for the day labels
    bars = []
    for i, day in enumerate(labels):
        n = counts.get(day, 0)
        h = plot * n / peak
        bars.append(Bar(day, n, i * slot + slot * 0.1, plot - h, h))
    return Chart(bars, width, height, slot * 0.8, peak)
