"""A station's location: latitude and longitude in decimal degrees, as the Dr.Web seed's
``station_geolocation_changed`` has them (``DD.DDDDDD``: at most six decimals).

Shared by the server (the admin API, an agent's report) and the agent (its configuration),
so both refuse the same values."""

from __future__ import annotations

import math
from typing import Any

DECIMALS = 6
LIMITS = {"latitude": 90.0, "longitude": 180.0}


class CoordinateError(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def coordinate(value: Any, field: str) -> float:
    """``value`` as the ``field`` coordinate (``latitude`` or ``longitude``): a finite
    number within ±90 (±180) with at most six decimals; raises CoordinateError."""
    limit = LIMITS[field]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CoordinateError(f"{field} must be a number of degrees (DD.DDDDDD)", field)
    number = float(value)
    if not math.isfinite(number) or abs(number) > limit:
        raise CoordinateError(f"{field} must be between {-limit:g} and {limit:g}", field)
    if round(number, DECIMALS) != number:
        raise CoordinateError(
            f"{field} has more than {DECIMALS} decimals; the format is DD.DDDDDD", field
        )
    return number + 0.0  # -0.0 is 0.0


def location(latitude: Any, longitude: Any) -> tuple[float, float] | None:
    """Both coordinates checked, or None when both are None; one without the other is
    refused."""
    if latitude is None and longitude is None:
        return None
    if latitude is None or longitude is None:
        missing = "latitude" if latitude is None else "longitude"
        raise CoordinateError(
            f"a location needs both latitude and longitude; {missing} is missing", missing
        )
    return coordinate(latitude, "latitude"), coordinate(longitude, "longitude")


def formatted(value: float) -> str:
    """``DD.DDDDDD``."""
    return f"{value:.{DECIMALS}f}"
