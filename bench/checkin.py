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


def run(
    size: str, workdir: Path, database_url: str | None = None, log_level: str | None = None
) -> dict[str, Any]:
    p = SIZES[size]
    floor_runs, garrison_runs = [], []
    levels = {"GARRISON_LOG_LEVEL": log_level} if log_level else None
    with (
        start_server(workdir / "floor", kind="floor") as floor,
        start_server(workdir / "checkin", database_url, extra_env=levels) as garrison,
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
    f, g = _median_pair(floor_runs, garrison_runs)
    errors = g["non_2xx"] + g["socket_errors"]
    ratio = g["requests_per_second"] / f["requests_per_second"]
    notes = []
    if not have_wrk():
        notes.append(
            "wrk is not installed: the Python load generator was used, so both "
            "rates are lower bounds set by the generator (apt-get install -y wrk)."
        )
    return {
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
