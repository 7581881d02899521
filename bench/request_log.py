"""What the per-request log line costs a check-in: the same authenticated Getjobs against two
``garrison serve`` processes, one at ``GARRISON_LOG_LEVEL=warning`` (no request lines) and
one at ``info`` (a JSON line per request, to a file as under a service manager), measured
back to back in alternating rounds on the server core.

    python -m bench.request_log [--rounds N] [--seconds S] [--connections C]

Prints each round's rates and the info/warning ratio, and the median ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.common import enroll_api, start_server
from bench.loadtool import measure

LEVELS = ("warning", "info")


def run(
    workdir: Path, rounds: int, seconds: float, connections: int, warmup: float = 2
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {level: [] for level in LEVELS}
    lines = 0
    with (
        start_server(workdir / "warning", extra_env={"GARRISON_LOG_LEVEL": "warning"}) as quiet,
        start_server(workdir / "info", extra_env={"GARRISON_LOG_LEVEL": "info"}) as loud,
    ):
        servers = {"warning": quiet, "info": loud}
        agents = {
            level: enroll_api(server, 1, concurrency=1)[0][0] for level, server in servers.items()
        }
        for i in range(rounds):
            # Alternate which goes first, so a trend in the machine's load hits both alike.
            order = LEVELS if i % 2 == 0 else LEVELS[::-1]
            for level in order:
                agent = agents[level]
                result = measure(
                    servers[level].url,
                    workdir / f"wrk-{level}-{i}",
                    seconds,
                    connections,
                    path=agent.getjobs_path,
                    headers=agent.headers,
                    warmup=warmup,
                )
                rates[level].append(result["requests_per_second"])
        loud.stop()
        lines = sum(
            1 for line in loud.log_path.open() if line.startswith('{"') and '"request"' in line
        )
    ratios = [round(i / w, 3) for w, i in zip(rates["warning"], rates["info"], strict=True)]
    return {
        "rounds": rounds,
        "seconds": seconds,
        "connections": connections,
        "warning_rps": [round(r) for r in rates["warning"]],
        "info_rps": [round(r) for r in rates["info"]],
        "info_over_warning": ratios,
        "median_ratio": statistics.median(ratios),
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
