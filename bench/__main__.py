"""Garrison's benchmark suite: every scenario, each figure beside its floor.

    python -m bench [--size tiny|full] [--database-url URL] [--server-db sqlite|postgresql]
                    [--only checkin,fleet,...] [--out PATH] [--docs PATH] [--render-only]

Prints a table, writes the figures as JSON and renders docs/BENCHMARKS.md.  The full size
writes bench/results/latest.json and docs/BENCHMARKS.md; the tiny size (seconds; what the
test suite runs) writes bench/results/tiny.json and bench/results/BENCHMARKS-tiny.md, so a
smoke run never overwrites the published figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import alerts, checkin, dispatch, fleet, growth, lua, report, search
from bench import console as console_bench
from bench import content as content_bench
from bench import export as export_bench
from bench import ingest as ingest_bench
from bench import onaccess as onaccess_bench
from bench import sensors as sensors_bench
from bench.common import RESULTS, ROOT, fig, machine, raise_fd_limit, scratch_url, target

INGEST_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"events": 1_000, "batch": 250, "clients": 1, "sustained": 3, "workers": [2]},
    # The 5 minutes, at 1 worker and at one per core.
    "full": {
        "events": 20_000,
        "batch": 500,
        "clients": 2,
        "sustained": 300,
        "workers": sorted({1, os.cpu_count() or 1}),
    },
}
EXPORT_SIZES = {"tiny": {"count": 400, "batch": 100}, "full": {"count": 20_000, "batch": 500}}


def ingestion(size: str, workdir: Path, pg_base: str | None) -> dict[str, Any]:
    """bench/ingest.py, on SQLite, and on PostgreSQL when a database URL is given."""
    p = INGEST_SIZES[size]
    args = (p["events"], p["batch"], p["clients"])
    workers = tuple(p["workers"])
    runs = [ingest_bench.run(*args, None, p["sustained"], workers)]
    if pg_base:
        url = scratch_url(pg_base, "ingest")
        runs.append(ingest_bench.run(*args, url, p["sustained"], workers))
    figures, targets = [], []
    for r in runs:
        figures.append(
            fig(
                f"events/s over HTTP ({r['database']})",
                r["http_events_per_second"],
                "events/s",
                floor=r["floor_events_per_second"],
                floor_name=f"native bulk write ({r['floor']})",
            )
        )
        for held in r["sustained"]:
            figures.append(
                fig(
                    f"events/s sustained {held['seconds']} s, {held['workers']} worker(s)"
                    f" ({r['database']})",
                    held["events_per_second"],
                    "events/s",
                    floor=r["floor_events_per_second"],
                    floor_name=f"native bulk write ({r['floor']})",
                )
            )
            goal = 50_000 if r["database"] == "postgresql" else 30_000
            how = f"{held['workers']} worker(s), {r['database']}"
            for who in ("server", "database"):
                if held.get(f"{who}_cpu_percent") is not None:
                    figures.append(
                        fig(
                            f"{who} CPU sustained, {how}",
                            held[f"{who}_cpu_percent"],
                            "% of a core",
                        )
                    )
            targets.append(
                target(
                    f"ingestion sustained ≥ {goal:,} events/s ({how})",
                    held["events_per_second"],
                    goal,
                    unit="events/s",
                )
            )
            for consumer, c in sorted(held["consumers"].items()):
                targets.append(
                    target(
                        f"{consumer} consumer lag under 5 s at the sustained rate ({how})",
                        c["max_lag_seconds"],
                        5,
                        at_most=True,
                        unit="s",
                    )
                )
        targets.append(
            target(
                f"ingestion ≥ 40% of the native bulk write ({r['database']})",
                r["ratio"],
                0.4,
                unit="x floor",
            )
        )
    return {
        "scenario": "ingestion",
        "title": "Telemetry ingestion over HTTP in batches (POST /api/events)",
        "figures": figures,
        "targets": targets,
        "details": {**p, "databases": [r["database"] for r in runs]},
        "notes": [
            "The floor writes the same rows (events and their search terms), already "
            "validated, by the database's fastest native bulk path in one transaction: "
            "PostgreSQL COPY, SQLite executemany (bench/ingest.py).",
            "Sustained: new batches posted without pause, the procedure consumer's lag "
            "sampled every second (its largest value, in seconds of ingestion).",
        ],
    }


def export(size: str, workdir: Path, pg_base: str | None) -> dict[str, Any]:
    """bench/export.py: each format over each transport beside the raw send of the same
    bytes through the same kind of socket (or file)."""
    p = EXPORT_SIZES[size]
    r = export_bench.run(p["count"], p["batch"], workdir / "export")
    udp = [row for row in r["formats"] if row["transport"] == "udp"]
    return {
        "scenario": "export",
        "title": "Export: events/s per format and transport",
        "figures": [
            fig(
                f"{row['format']} over {row['transport']}",
                row["garrison_events_per_second"],
                "events/s",
                floor=row["floor_events_per_second"],
                floor_name="file write" if row["transport"] == "file" else "socket send",
            )
            for row in r["formats"]
        ],
        "targets": [],
        "details": {
            "events": p["count"],
            "batch": p["batch"],
            "transports": r["transports"],
            "udp_datagrams_lost": {row["format"]: row["lost"] for row in udp},
            "udp_floor_datagrams_lost": {row["format"]: row["floor_lost"] for row in udp},
        },
        "notes": [
            "Garrison's figure is the exporter's own code: mapping, formatting, the RFC 5424 "
            "envelope and framing, and the transport (a new connection per format). The floor "
            "sends the very bytes already made through a bare socket of the same kind in the "
            "same batches: for RELP the same frames, each window of 256 awaiting its "
            "acknowledgements; for HTTP the same POST; for the file the same lines, "
            "fsync'ed once per batch (bench/export.py).",
            "The receivers run in another process on the load generator's core "
            "(bench/export_sink.py); after each measurement the run waits until the receiver "
            "has every byte, and a stream that delivers less fails the run. UDP reports the "
            "datagrams the kernel dropped.",
        ],
    }


def _server_scenario(module: Any) -> Callable[[str, Path, str | None], dict[str, Any]]:
    def go(size: str, workdir: Path, pg_base: str | None) -> dict[str, Any]:
        url = scratch_url(pg_base, module.__name__.rsplit(".", 1)[1]) if pg_base else None
        result: dict[str, Any] = module.run(size, workdir, url)
        return result

    return go


def _alerts(size: str, workdir: Path, pg_base: str | None) -> dict[str, Any]:
    if pg_base:
        return alerts.run(
            size, workdir, scratch_url(pg_base, "alerts"), scratch_url(pg_base, "alerts_floor")
        )
    return alerts.run(size, workdir)


def _fleet_100k(size: str, workdir: Path, pg_base: str | None) -> dict[str, Any]:
    """The fleet at 100,000 agents on every worker, 10% of them sending telemetry (the tiny
    size is the fleet's own tiny shape, which has the same mix)."""
    url = scratch_url(pg_base, "fleet100k") if pg_base else None
    return fleet.run("100k" if size == "full" else "tiny", workdir, url)


# Scenarios that do not run on the server's database (or, for ingestion, run on both): their
# results keep their name whatever --server-db says.
DATABASE_FREE = {"ingestion", "lua", "sensors", "onaccess"}


def result_key(name: str, server_pg: str | None) -> str:
    """A server scenario measured on PostgreSQL is kept beside its SQLite figures."""
    return name if server_pg is None or name in DATABASE_FREE else f"{name}@postgresql"


SCENARIOS: dict[str, Callable[[str, Path, str | None], dict[str, Any]]] = {
    "checkin": _server_scenario(checkin),
    "fleet": _server_scenario(fleet),
    "fleet-100k": _fleet_100k,
    "dispatch": _server_scenario(dispatch),
    "ingestion": ingestion,
    "alerts": _alerts,
    "export": export,
    "lua": lambda size, workdir, pg: lua.run(size),
    "growth": _server_scenario(growth),
    "search": _server_scenario(search),
    "sensors": lambda size, workdir, pg: sensors_bench.run(size, workdir),
    "content": _server_scenario(content_bench),
    "onaccess": lambda size, workdir, pg: onaccess_bench.run(size, workdir),
    "console": _server_scenario(console_bench),
}


EXPORT_VERSUS_INGESTION = "≥ the highest sustained ingestion rate"


def export_targets(results: dict[str, Any]) -> None:
    """The issue's "export ≥ the sustained ingestion rate per target": each format and
    transport of the export scenario against the highest sustained rate of the ingestion
    scenario (both in these results, whichever run measured them)."""
    exported = results["scenarios"].get("export")
    ingested = results["scenarios"].get("ingestion")
    if not exported or "error" in exported or not ingested or "error" in ingested:
        return
    rates = [
        f["value"]
        for f in ingested.get("figures", [])
        if f["name"].startswith("events/s sustained")
    ]
    exported["targets"] = [
        t for t in exported.get("targets", []) if EXPORT_VERSUS_INGESTION not in t["target"]
    ]
    if not rates:
        return
    for f in exported["figures"]:
        exported["targets"].append(
            target(
                f"export {f['name']} {EXPORT_VERSUS_INGESTION} ({max(rates):,.0f} events/s)",
                f["value"],
                round(max(rates), 1),
                unit="events/s",
            )
        )


def merged(out: Path, results: dict[str, Any]) -> dict[str, Any]:
    """An ``--only`` run replaces its scenarios in the earlier results of the same size,
    so re-measuring one scenario does not drop the others; each scenario keeps its date."""
    if not out.exists():
        return results
    earlier = json.loads(out.read_text())
    if earlier.get("size") != results["size"]:
        return results
    for r in earlier["scenarios"].values():
        r.setdefault("date", earlier["machine"]["date"])
        if earlier["machine"]["cpu_model"] != results["machine"]["cpu_model"]:
            r.setdefault("cpu_model", earlier["machine"]["cpu_model"])
    scenarios = {**earlier["scenarios"], **results["scenarios"]}
    # Whether ingestion also ran on PostgreSQL is the ingestion scenario's to say.
    database = results["database"] if "ingestion" in results["scenarios"] else earlier["database"]
    return {
        **results,
        "database": database,
        "scenarios": {
            key: scenarios[key]
            for name in SCENARIOS
            for key in (name, f"{name}@postgresql")
            if key in scenarios
        },
        "seconds": round(sum(r.get("seconds", 0) for r in scenarios.values()), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL database the suite may empty; scratch databases "
        "are created beside it. Ingestion then runs on SQLite and on it.",
    )
    parser.add_argument(
        "--server-db",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the database of the server scenarios (postgresql needs --database-url)",
    )
    parser.add_argument("--only", default=None, help="comma-separated scenarios to run")
    parser.add_argument("--out", type=Path, default=None, help="results JSON")
    parser.add_argument("--docs", type=Path, default=None, help="rendered Markdown")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep databases and logs here (default: a temporary directory)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="render --docs from the --out JSON without running anything",
    )
    args = parser.parse_args(argv)
    out = args.out or RESULTS / ("latest.json" if args.size == "full" else "tiny.json")
    docs = args.docs or (
        ROOT / "docs" / "BENCHMARKS.md" if args.size == "full" else RESULTS / "BENCHMARKS-tiny.md"
    )
    if args.render_only:
        saved = json.loads(out.read_text())
        docs.write_text(report.markdown(saved))
        print(f"rendered {docs} from {out}")
        return 0
    if args.server_db == "postgresql" and not args.database_url:
        parser.error("--server-db postgresql needs --database-url")
    names = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
    raise_fd_limit()
    server_pg = args.database_url if args.server_db == "postgresql" else None
    results: dict[str, Any] = {
        "size": args.size,
        "database": ("SQLite (WAL)" if server_pg is None else "PostgreSQL")
        + (" ; ingestion also on PostgreSQL" if args.database_url and server_pg is None else ""),
        "machine": machine(),
        "scenarios": {},
    }
    started = time.perf_counter()
    failed = False
    with tempfile.TemporaryDirectory(prefix="garrison-bench-") as tmp:
        base = args.workdir or Path(tmp)
        for name in names:
            print(f"== {name} ({args.size})", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            pg = args.database_url if name == "ingestion" else server_pg
            try:
                result = SCENARIOS[name](args.size, base / name, pg)
            except Exception:
                failed = True
                result = {"scenario": name, "error": traceback.format_exc()}
                print(result["error"], file=sys.stderr)
            result["seconds"] = round(time.perf_counter() - t0, 1)
            result["date"] = results["machine"]["date"]
            results["scenarios"][result_key(name, server_pg)] = result
            print(f"   {name}: {result['seconds']} s", file=sys.stderr, flush=True)
            # What is done so far survives a long run that dies later.
            partial = out.with_name(out.name + ".partial")
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(results, indent=2) + "\n")
    results["seconds"] = round(time.perf_counter() - started, 1)
    if args.only:
        results = merged(out, results)
    export_targets(results)
    out = out.resolve()
    results["out"] = str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_name(out.name + ".partial").unlink(missing_ok=True)
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(report.markdown(results))
    print(report.table(results))
    print(f"\nwrote {out} and {docs} ({results['seconds']:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
