"""What the per-request log line costs a check-in: the same authenticated Getjobs against two
``garrison serve`` processes, one at ``GARRISON_LOG_LEVEL=warning`` (no request lines) and
one at ``info`` (a JSON line per request, to a file as under a service manager), measured
back to back in alternating rounds on the server core.

    python -m bench.request_log [--rounds N] [--seconds S] [--connections C]

Prints each round's rates and the info/warning ratio, and the median ratio; and, because a
shared machine's load moves the rates far more than a log line does, the server's CPU time
per request (utime + stime from /proc, the flusher thread's writes included) in each round,
which that load disturbs much less.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, enroll_api, start_server
from bench.loadtool import measure

LEVELS = ("warning", "info")


def run(
    workdir: Path, rounds: int, seconds: float, connections: int, warmup: float = 2
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {level: [] for level in LEVELS}
    cpu_us: dict[str, list[float]] = {level: [] for level in LEVELS}
    lines = 0
    with (
        start_server(workdir / "warning", extra_env={"GARRISON_LOG_LEVEL": "warning"}) as quiet,
        start_server(workdir / "info", extra_env={"GARRISON_LOG_LEVEL": "info"}) as loud,
    ):
        servers = {"warning": quiet, "info": loud}
        agents = {
            level: enroll_api(server, 1, concurrency=1)[0][0] for level, server in servers.items()
        }

        def load(level: str, name: str, seconds: float) -> dict[str, Any]:
            agent = agents[level]
            return measure(
                servers[level].url,
                workdir / f"wrk-{level}-{name}",
                seconds,
                connections,
                path=agent.getjobs_path,
                headers=agent.headers,
                warmup=0,
            )

        for level in LEVELS:
            load(level, "warmup", warmup)
        for i in range(rounds):
            # Alternate which goes first, so a trend in the machine's load hits both alike.
            order = LEVELS if i % 2 == 0 else LEVELS[::-1]
            for level in order:
                before = cpu_seconds(servers[level].pid)
                result = load(level, str(i), seconds)
                used = cpu_seconds(servers[level].pid) - before
                rates[level].append(result["requests_per_second"])
                cpu_us[level].append(used / result["requests"] * 1e6)
        loud.stop()
        lines = sum(
            1 for line in loud.log_path.open() if line.startswith('{"') and '"request"' in line
        )
    ratios = [round(i / w, 3) for w, i in zip(rates["warning"], rates["info"], strict=True)]
    cpu_ratios = [round(i / w, 3) for w, i in zip(cpu_us["warning"], cpu_us["info"], strict=True)]
    return {
        "rounds": rounds,
        "seconds": seconds,
        "connections": connections,
        "warning_rps": [round(r) for r in rates["warning"]],
        "info_rps": [round(r) for r in rates["info"]],
        "info_over_warning": ratios,
        "median_ratio": statistics.median(ratios),
        "warning_cpu_us_per_request": [round(c, 1) for c in cpu_us["warning"]],
        "info_cpu_us_per_request": [round(c, 1) for c in cpu_us["info"]],
        "cpu_info_over_warning": cpu_ratios,
        "median_cpu_ratio": statistics.median(cpu_ratios),
        "request_lines_written": lines,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="check-in rate at info vs warning")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(Path(tmp), args.rounds, args.seconds, args.connections), indent=2))


if __name__ == "__main__":
    main()
