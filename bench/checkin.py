"""Agent check-in: authenticated Getjobs with nothing queued, requests/s and p50/p99, beside
the HTTP floor (bench/floor_app.py: the same uvicorn + Starlette stack answering a fixed
JSON body, no Garrison code).  Both servers run on the server core, wrk on the load core,
with the same connections, duration and request bytes (a Lua script sets the headers).

    python -m bench.checkin [--size tiny|full] [--database-url URL] [--log-level LEVEL]

The server runs at ``GARRISON_LOG_LEVEL=warning`` unless ``--log-level`` says otherwise
(``info`` logs every request; ``bench.request_log`` compares the two).

In the full size the two are measured back to back in several rounds and the round with the
median ratio is reported (the machine's noise then hits both sides of a ratio alike).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.common import enroll_api, fig, start_server, target
from bench.loadtool import have_wrk, measure

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"seconds": 2, "warmup": 0, "connections": 50, "rounds": 1},
    "full": {"seconds": 10, "warmup": 2, "connections": 50, "rounds": 5},
}


def _median_pair(
    floor_runs: list[dict[str, Any]], garrison_runs: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The round whose Garrison/floor ratio is the median: each round measures both back to
    back, so a ratio compares the two under the same machine noise."""
    ratios = [
        g["requests_per_second"] / f["requests_per_second"]
        for f, g in zip(floor_runs, garrison_runs, strict=True)
    ]
    i = ratios.index(statistics.median_low(ratios))
    return floor_runs[i], garrison_runs[i]


def rounds(
    p: dict[str, Any],
    workdir: Path,
    database_url: str | None,
    log_level: str | None,
    workers: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The floor and Garrison measured back to back, ``p["rounds"]`` times, each in
    ``workers`` processes: one worker on the server core, several on every core (the load
    generator's core included, for both alike)."""
    floor_runs: list[dict[str, Any]] = []
    garrison_runs: list[dict[str, Any]] = []
    env = {"GARRISON_LOG_LEVEL": log_level} if log_level else {}
    placement: dict[str, Any] = {}
    if workers > 1:
        env["GARRISON_WORKERS"] = str(workers)
        placement = {"cpu": None}
    tag = "" if workers == 1 else f"-w{workers}"
    with (
        start_server(
            workdir / f"floor{tag}", kind="floor", floor_workers=workers, **placement
        ) as floor,
        start_server(
            workdir / f"checkin{tag}", database_url, extra_env=env or None, **placement
        ) as garrison,
    ):
        agents, _ = enroll_api(garrison, 1, concurrency=1)
        agent = agents[0]
        for i in range(p["rounds"]):
            floor_runs.append(
                measure(
                    floor.url,
                    workdir / f"wrk-floor-{i}",
                    p["seconds"],
                    p["connections"],
                    path=agent.getjobs_path,
                    headers=agent.headers,
                    warmup=p["warmup"],
                )
            )
            garrison_runs.append(
                measure(
                    garrison.url,
                    workdir / f"wrk-garrison-{i}",
                    p["seconds"],
                    p["connections"],
                    path=agent.getjobs_path,
                    headers=agent.headers,
                    warmup=p["warmup"],
                )
            )
    return floor_runs, garrison_runs


def _with_workers(
    many: tuple[list[dict[str, Any]], list[dict[str, Any]]], cores: int
) -> dict[str, Any]:
    """The every-core rounds' figures, target and details (added to the result below)."""
    f, g = _median_pair(*many)
    return {
        "figures": [
            fig(
                f"check-ins/s, {cores} workers",
                g["requests_per_second"],
                "req/s",
                floor=f["requests_per_second"],
                floor_name=f"HTTP floor, {cores} workers",
            ),
            fig(
                f"p99 latency, {cores} workers",
                g["p99_ms"],
                "ms",
                floor=f["p99_ms"],
                floor_name=f"HTTP floor, {cores} workers",
                higher_is_better=False,
            ),
        ],
        "target": target(
            f"check-in ≥ 60% of the HTTP floor with all {cores} workers (the floor in as many)",
            round(g["requests_per_second"] / f["requests_per_second"], 3),
            0.6,
            unit="x floor",
        ),
        "details": {
            "workers": cores,
            "workers_errors": g["non_2xx"] + g["socket_errors"],
            "workers_round_ratios": [
                round(g_["requests_per_second"] / f_["requests_per_second"], 3)
                for f_, g_ in zip(*many, strict=True)
            ],
        },
    }


def run(
    size: str, workdir: Path, database_url: str | None = None, log_level: str | None = None
) -> dict[str, Any]:
    p = SIZES[size]
    floor_runs, garrison_runs = rounds(p, workdir, database_url, log_level, 1)
    # Every core: garrison serve's default worker count on PostgreSQL, and the issue's
    # "check-in ratio with all workers, the floor with the same number of workers".
    cores = os.cpu_count() or 1
    many = rounds(p, workdir, database_url, log_level, cores) if cores > 1 else None
    f, g = _median_pair(floor_runs, garrison_runs)
    errors = g["non_2xx"] + g["socket_errors"]
    ratio = g["requests_per_second"] / f["requests_per_second"]
    notes = []
    if not have_wrk():
        notes.append(
            "wrk is not installed: the Python load generator was used, so both "
            "rates are lower bounds set by the generator (apt-get install -y wrk)."
        )
    result: dict[str, Any] = {
        "scenario": "checkin",
        "title": "Agent check-in (authenticated Getjobs, nothing queued)",
        "figures": [
            fig(
                "check-ins/s",
                g["requests_per_second"],
                "req/s",
                floor=f["requests_per_second"],
                floor_name="HTTP floor",
            ),
            fig(
                "p50 latency",
                g["p50_ms"],
                "ms",
                floor=f["p50_ms"],
                floor_name="HTTP floor",
                higher_is_better=False,
            ),
            fig(
                "p99 latency",
                g["p99_ms"],
                "ms",
                floor=f["p99_ms"],
                floor_name="HTTP floor",
                higher_is_better=False,
            ),
        ],
        "targets": [
            target("check-in ≥ 50% of the HTTP floor", round(ratio, 3), 0.5, unit="x floor"),
        ],
        "details": {
            "tool": g["tool"],
            "log_level": log_level or "warning",
            "connections": p["connections"],
            "seconds": p["seconds"],
            "rounds": p["rounds"],
            "errors": errors,
            "floor_rounds_rps": [r["requests_per_second"] for r in floor_runs],
            "garrison_rounds_rps": [r["requests_per_second"] for r in garrison_runs],
            "round_ratios": [
                round(g_["requests_per_second"] / f_["requests_per_second"], 3)
                for f_, g_ in zip(floor_runs, garrison_runs, strict=True)
            ],
        },
        "notes": notes,
    }
    if many is not None:
        extra = _with_workers(many, cores)
        result["figures"] += extra["figures"]
        result["targets"].append(extra["target"])
        result["details"].update(extra["details"])
        result["notes"].append(
            f"With {cores} workers: both servers in {cores} processes accepting on one socket "
            "(garrison serve --workers; uvicorn's workers for the floor), on every core, "
            "the load generator's included, so the ratio compares like with like."
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="agent check-in vs the HTTP floor")
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--log-level", default=None, help="the server's (default: warning)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.size, Path(tmp), args.database_url, args.log_level)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
