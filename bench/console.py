"""The web console at scale: the dashboard and the first stations page, with the fleet's
stations in the database, beside the admin API's own list call (``GET /admin/v1/stations``,
the same page size) in the same run, on the same server.

Each request is timed at the client on loopback, one at a time after a warm-up, so the
figure is the server's time plus a loopback round trip.

    python -m bench.console [--size tiny|full] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    Server,
    fig,
    migrate_to_head,
    on_load_core,
    percentile,
    seed_stations_bulk,
    sqlite_url,
    start_server,
    target,
)

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"stations": 1_000, "requests": 20, "warmup": 3},
    "full": {"stations": 100_000, "requests": 200, "warmup": 10},
}
PAGE = 50
USER = ("bench-console", "bench-console-password")
_LOGIN_CSRF = re.compile(r'name="login_csrf" value="([^"]+)"')


def _login(server: Server, client: httpx.Client) -> None:
    made = client.post(
        "/admin/v1/users",
        json={"username": USER[0], "password": USER[1], "role": "viewer"},
        headers=server.admin,
    )
    if made.status_code != 201:
        raise RuntimeError(f"could not create the console user: {made.text}")
    form = client.get("/login")
    match = _LOGIN_CSRF.search(form.text)
    if match is None:
        raise RuntimeError("the login page has no login_csrf field")
    done = client.post(
        "/login",
        data={"username": USER[0], "password": USER[1], "login_csrf": match.group(1)},
        follow_redirects=False,
    )
    if done.status_code != 303:
        raise RuntimeError(f"console login failed: {done.status_code} {done.text[:200]}")


def _time(client: httpx.Client, path: str, n: int, warmup: int, **kw: Any) -> list[float]:
    for _ in range(warmup):
        client.get(path, **kw).raise_for_status()
    ms = []
    for _ in range(n):
        started = time.perf_counter()
        answer = client.get(path, **kw)
        ms.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:200]}")
    return ms


def run(size: str, workdir: Path, database_url: str | None = None) -> dict[str, Any]:
    p = SIZES[size]
    (workdir / "console").mkdir(parents=True, exist_ok=True)
    url = database_url or sqlite_url(workdir / "console")
    if database_url is None:
        migrate_to_head(url)
    _, seeded = seed_stations_bulk(url, p["stations"])
    database = "postgresql" if url.startswith("postgresql") else "sqlite"
    calls = {
        "console dashboard": "/dashboard",
        "console first stations page": "/stations",
        "console stations page sorted by hostname": "/stations?sort=hostname&dir=desc",
        "admin API GET /admin/v1/stations": f"/admin/v1/stations?limit={PAGE}",
    }
    times: dict[str, list[float]] = {}
    with (
        start_server(workdir / "console", url) as server,
        on_load_core(),
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        _login(server, client)
        for name, path in calls.items():
            headers = server.admin if path.startswith("/admin/") else {}
            times[name] = _time(client, path, p["requests"], p["warmup"], headers=headers)
    figures, targets = [], []
    api = times["admin API GET /admin/v1/stations"]
    for name, ms in times.items():
        p50, p99 = percentile(ms, 50), percentile(ms, 99)
        figures.append(fig(f"{name} p50", p50, "ms", higher_is_better=False))
        figures.append(
            fig(
                f"{name} p99",
                p99,
                "ms",
                floor=percentile(api, 99) if not name.startswith("admin") else None,
                floor_name="admin API list p99" if not name.startswith("admin") else None,
                higher_is_better=False,
            )
        )
        if name.startswith("console") and "sorted" not in name:
            targets.append(
                target(
                    f"{name} p99 under 300 ms at {p['stations']:,} stations ({database})",
                    round(p99, 2),
                    300,
                    at_most=True,
                    unit="ms",
                )
            )
    return {
        "scenario": "console",
        "title": "Web console pages at scale, beside the admin API's list call",
        "figures": figures,
        "targets": targets,
        "details": {**p, "page": PAGE, "database": database, "seed_seconds": round(seeded, 2)},
        "notes": [
            "Sequential GETs with a logged-in console session (a viewer), timed at the client "
            "on loopback after a warm-up; the admin API call lists the same page size with a "
            "bearer token. The floor of a console page is the admin API's list p99."
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args.size, Path(tmp), args.database_url), indent=2))


if __name__ == "__main__":
    main()
