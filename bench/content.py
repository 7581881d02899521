"""Signed content at scale (issue 15, "Scale"): a hashes rule set of N SHA-256 records built
on the server, signed, changed by C records, and taken up by an agent as a line delta while
a scan loop keeps running.

    python -m bench.content [--size tiny|full]

Every step is Garrison's own code, each beside a floor measured in the same run:

- **build**: ``content.service.add_version`` in one transaction on SQLite (validation of
  every line, the hash, the version row, the audit record, the new serial's snapshot),
  beside SHA-256 of the same bytes;
- **sign**: the manifest of the new serial (``service.manifest``) signed with the node's
  Ed25519 key (``signing.sign``) and hashed (``canonical``);
- **delta**: the server's ``delivery.line_delta`` for C replaced records (C removed, C
  added at the end), its size beside the full file's;
- **agent**: a real ``garrison serve`` on the same data dir, an agent enrolled through it in
  a child process that installs version 1 (the whole file); then version 2 is added and a
  second child, holding the old engine and running a scan loop in a thread, runs
  ``content.sync.update``: verification, the delta fetched and applied, the engine loaded
  from the new directory, the swap.  Its phases are timed by wrapping the real functions;
  the scan loop records the longest gap between two scans, during the swap and during the
  whole update, beside the longest gap with no update running.  The child's peak RSS is
  its ``VmHWM`` (bench.common.peak_rss_bytes).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

SIZES: dict[str, dict[str, int]] = {
    "tiny": {"records": 10_000, "changes": 100},
    "full": {"records": 1_000_000, "changes": 1_000},
}
RULESET = "bench-hashes"
AGENT_UUID = "BE4C0000-0000-0000-0000-00000000C0DE"
WARM_SECONDS = 0.5
IDLE_SECONDS = 1.0


def _sample(i: int) -> bytes:
    return f"garrison content bench sample {i}\n".encode()


def _line(i: int) -> str:
    data = _sample(i)
    return f"{hashlib.sha256(data).hexdigest()}:{len(data)}:Bench.Hash.{i}"


def contents(records: int, changes: int) -> tuple[str, str, int]:
    """Version 1 (records 0..N-1) and version 2 (C of them, spread evenly, replaced by C new
    ones appended at the end), and the index of the first new record (the scan loop's
    sample: detected only once version 2 is in force)."""
    lines = [_line(i) for i in range(records)]
    v1 = "".join(line + "\n" for line in lines)
    step = max(1, records // changes)
    gone = set(range(0, records, step)[:changes])
    kept = [line for i, line in enumerate(lines) if i not in gone]
    added = [_line(records + i) for i in range(changes)]
    v2 = "".join(line + "\n" for line in kept + added)
    return v1, v2, records


def _seconds(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


# -- the server side (this process) ------------------------------------------------------------


def _add(url: str, content: str, comment: str) -> tuple[float, dict[str, Any]]:
    from garrison.server.audit.actor import Actor
    from garrison.server.content import service
    from garrison.server.store.engine import Database

    db = Database(url)
    actor = Actor(username="bench", role="admin")
    try:
        t0 = time.perf_counter()
        with db.transaction() as session:
            added = service.add_version(session, actor, "hashes", RULESET, content, comment)
            info = {
                "version": added.version.version,
                "sha256": added.version.sha256,
                "records": added.version.records,
                "size": added.version.size,
            }
        return time.perf_counter() - t0, info
    finally:
        db.dispose()


def _sign(url: str, data_dir: Path) -> tuple[float, float, int]:
    """(seconds to build the current manifest, seconds to sign and hash it, its bytes)."""
    from garrison.server.content import service
    from garrison.server.content.models import DEFAULT_SCOPE, ContentSerial
    from garrison.server.content.signing import KeyRing, canonical, sign
    from garrison.server.store.engine import Database

    db = Database(url)
    ring = KeyRing.load_or_create(data_dir)
    key = ring.get(ring.current_id)
    if key is None:
        raise RuntimeError("no content key")
    try:
        t0 = time.perf_counter()
        with db.reading() as session:
            row = service.server_row(session)
            snap = session.get(ContentSerial, row.serial)
            if snap is None:
                raise RuntimeError("no snapshot of the current serial")
            manifest = service.manifest(row.server_id, snap, DEFAULT_SCOPE)
        built = time.perf_counter() - t0
        t1 = time.perf_counter()
        signature = sign(key, manifest)
        digest = hashlib.sha256(canonical(manifest)).hexdigest()
        signed = time.perf_counter() - t1
        if not signature or not digest:
            raise RuntimeError("no signature")
        return built, signed, len(canonical(manifest))
    finally:
        db.dispose()


def _initialise(url: str, data_dir: Path) -> None:
    from garrison.server.content.delivery import ContentDelivery
    from garrison.server.content.signing import KeyRing
    from garrison.server.store.engine import Database

    db = Database(url)
    try:
        ContentDelivery(db, KeyRing.load_or_create(data_dir)).initialise()
    finally:
        db.dispose()


# -- the agent side (child processes) ----------------------------------------------------------


def _agent(state_dir: Path, server_url: str) -> Any:
    os.environ["GARRISON_AGENT_UUID"] = AGENT_UUID
    from garrison.agent.context import Agent
    from garrison.agent.state import StateDir

    return Agent(StateDir(state_dir, explicit=True), server_url)


def agent_enroll(state_dir: Path, server_url: str, key: str) -> dict[str, Any]:
    """Enroll, then install what is assigned (version 1, the whole file)."""
    from garrison.agent.content import sync
    from garrison.agent.tasks import enrollment

    agent = _agent(state_dir, server_url)
    enrollment.run(agent, key)
    seconds, outcome = _seconds(sync.update, agent)
    if outcome.status != "installed":
        raise RuntimeError(f"first install: {outcome.status}: {outcome.message}")
    return {"seconds": seconds, "message": outcome.message}


def _scan_loop(
    agent: Any, sample: bytes, stop: threading.Event, out: list[tuple[float, bool]]
) -> None:
    """Scan ``sample`` with whatever engine is in force, back to back; each completion's
    time and whether it detected the sample."""
    while not stop.is_set():
        found = agent.engine().match(sample)
        out.append((time.perf_counter(), bool(found)))


def _longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest interval between consecutive scan completions that overlaps
    [start, end] (with the window's own edges when no scan completed inside it)."""
    longest = 0.0
    for a, b in itertools.pairwise(times):
        if b >= start and a <= end:
            longest = max(longest, b - a)
    return longest


def _sample_rss(stop: threading.Event, out: list[tuple[float, int]]) -> None:
    """This process's VmRSS every 10 ms until ``stop``."""
    from bench.common import rss_bytes

    pid = os.getpid()
    while True:
        out.append((time.perf_counter(), rss_bytes(pid)))
        if stop.wait(0.01):
            out.append((time.perf_counter(), rss_bytes(pid)))
            return


def _gap_phase(
    times: list[float], start: float, end: float, windows: dict[str, tuple[float, float]]
) -> str:
    """The phase the longest gap of [start, end] overlaps most ("other" when none)."""
    pairs = [(b - a, a, b) for a, b in itertools.pairwise(times) if b >= start and a <= end]
    if not pairs:
        return "other"
    _, a, b = max(pairs)
    overlap = {n: min(b, w[1]) - max(a, w[0]) for n, w in windows.items()}
    best = max(overlap, key=lambda n: overlap[n], default="other")
    return best if overlap.get(best, 0) > 0 else "other"


def agent_update(state_dir: Path, server_url: str, sample_index: int) -> dict[str, Any]:
    """With the old engine loaded and a scan loop running: one update to version 2."""
    from bench.common import peak_rss_bytes, rss_bytes
    from garrison.agent.content import download, sync
    from garrison.agent.content.store import ContentStore

    agent = _agent(state_dir, server_url)
    old_db = agent.signatures  # the installed content, loaded as the daemon has it
    rss_before = rss_bytes(os.getpid())
    phases: dict[str, float] = {}
    marks: dict[str, float] = {}

    windows: dict[str, tuple[float, float]] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                t1 = time.perf_counter()
                phases[name] = phases.get(name, 0.0) + t1 - t0
                windows[name] = (t0, t1)

        return wrapper

    sync.verify = timed("verify", sync.verify)  # type: ignore[attr-defined]
    sync._load = timed("engine_load", sync._load)
    download.Downloader.fetch_delta = timed("delta", download.Downloader.fetch_delta)  # type: ignore[method-assign]
    real_swap = ContentStore.swap

    def swap(self: ContentStore, directory: Path) -> Path | None:
        marks["swap_start"] = time.perf_counter()
        return real_swap(self, directory)

    ContentStore.swap = swap  # type: ignore[method-assign]
    real_install = agent.swap_signatures

    def install(db: Any, content_sha256: str = "") -> Any:
        try:
            return real_install(db, content_sha256)
        finally:
            marks["swap_end"] = time.perf_counter()

    agent.swap_signatures = install

    sample = _sample(sample_index)
    scans: list[tuple[float, bool]] = []
    stop = threading.Event()
    loop = threading.Thread(target=_scan_loop, args=(agent, sample, stop, scans), daemon=True)
    loop.start()
    time.sleep(WARM_SECONDS)  # the first scans (imports, caches) are not the floor
    idle_start = time.perf_counter()
    time.sleep(IDLE_SECONDS)  # the loop alone: its longest gap is the floor
    idle_end = time.perf_counter()
    rss: list[tuple[float, int]] = []
    sampling = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(sampling, rss), daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    outcome = sync.update(agent)
    total = time.perf_counter() - t0
    sampling.set()
    sampler.join()
    peaks = {
        name: max((r for t, r in rss if w[0] <= t <= w[1]), default=0)
        for name, w in windows.items()
    }
    t1 = time.perf_counter()
    # A few scans after the swap, so the gap that spans it is closed.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (not scans or scans[-1][0] <= t1):
        time.sleep(0.01)
    stop.set()
    loop.join()
    if outcome.status != "installed":
        raise RuntimeError(f"update: {outcome.status}: {outcome.message}")
    fetched = next(iter(outcome.fetched.values()), None)
    times = [t for t, _ in scans]
    idle = [t for t in times if idle_start <= t <= idle_end]
    detected_before = any(hit for t, hit in scans if t < marks["swap_start"])
    detected_after = any(hit for t, hit in scans if t > marks["swap_end"])
    if detected_before or not detected_after:
        raise RuntimeError(
            f"the scan loop's sample: detected before the swap {detected_before}, "
            f"after {detected_after}"
        )
    installed = ContentStore(agent.state).installed()
    del old_db
    return {
        "status": outcome.status,
        "message": outcome.message,
        "how": fetched.how if fetched else "",
        "received_bytes": fetched.received if fetched else 0,
        "total_seconds": total,
        "phases": phases,
        "swap_seconds": marks["swap_end"] - marks["swap_start"],
        "outcome_swap_seconds": outcome.swap_seconds,
        "scans": len(scans),
        "idle_longest_gap": _longest_gap(idle, idle[0] if idle else 0.0, idle_end),
        "swap_longest_gap": _longest_gap(times, marks["swap_start"], marks["swap_end"]),
        "update_longest_gap": _longest_gap(times, t0, t0 + total),
        "longest_gap_in": _gap_phase(times, t0, t0 + total, windows),
        "peak_rss_in": peaks,
        "rss_before": rss_before,
        "rss_update_peak": max((r for _, r in rss), default=0),
        "rss_process_peak": peak_rss_bytes(),
        "installed_sha256": installed.manifest.files[0].sha256 if installed else "",
        "new_file": str(installed.directory / installed.manifest.files[0].name)
        if installed
        else "",
    }


def _child(*args: str, timeout: float) -> dict[str, Any]:
    from bench.common import ROOT

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "bench.content", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.content {args[0]} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- floors --------------------------------------------------------------------------------------


def _swap_floor(directory: Path, rounds: int = 50) -> float:
    """A bare symlink made and renamed over another in the same directory, fsync'ed: the
    least an atomic directory swap costs (median of ``rounds``)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "a").mkdir(exist_ok=True)
    (directory / "b").mkdir(exist_ok=True)
    link = directory / "current"
    samples = []
    for i in range(rounds):
        t0 = time.perf_counter()
        tmp = directory / ".current.tmp"
        os.symlink("a" if i % 2 else "b", tmp)
        os.replace(tmp, link)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        samples.append(time.perf_counter() - t0)
    return sorted(samples)[len(samples) // 2]


def _read_sha256(path: Path) -> float:
    t0 = time.perf_counter()
    hashlib.sha256(path.read_bytes()).hexdigest()
    return time.perf_counter() - t0


# -- the scenario --------------------------------------------------------------------------------


def run(size: str, workdir: Path, database_url: str | None = None) -> dict[str, Any]:
    from bench.common import enrollment_key, fig, migrate_to_head, sqlite_url, start_server, target
    from garrison.server.content.delivery import line_delta

    p = SIZES[size]
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "server"
    data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or sqlite_url(data_dir)
    migrate_to_head(url)
    _initialise(url, data_dir)

    v1, v2, sample_index = contents(p["records"], p["changes"])
    b1, b2 = v1.encode(), v2.encode()
    t0 = time.perf_counter()
    digest1 = hashlib.sha256(b1).hexdigest()
    hash_floor = time.perf_counter() - t0
    build_seconds, info1 = _add(url, v1, "bench: version 1")
    if info1["sha256"] != digest1 or info1["records"] != p["records"]:
        raise RuntimeError(f"version 1 stored as {info1}")
    manifest_seconds, sign_seconds, manifest_bytes = _sign(url, data_dir)
    delta_compute, delta = _seconds(line_delta, b1, b2, digest1, hashlib.sha256(b2).hexdigest())
    if delta is None:
        raise RuntimeError("no line delta for the change")
    old_lines, new_lines = set(v1.split("\n")), set(v2.split("\n"))
    changed_bytes = sum(len(x) + 1 for x in old_lines ^ new_lines)
    del v1, b1, old_lines, new_lines

    with start_server(data_dir, database_url, cpu=None) as server:
        key = enrollment_key(server, 1)
        state = workdir / "agent"
        first = _child("enroll", str(state), server.url, key, timeout=1800)
        build2_seconds, info2 = _add(url, v2, "bench: version 2")
        updated = _child("update", str(state), server.url, str(sample_index), timeout=1800)
    if updated["installed_sha256"] != info2["sha256"] or updated["how"] != "delta":
        raise RuntimeError(f"the agent installed {updated}")
    apply_floor = _read_sha256(Path(updated["new_file"]))
    swap_floor = _swap_floor(workdir / "swapfloor")
    phases = updated["phases"]
    ms = 1000.0
    mib = 2**20
    figures = [
        fig(
            f"build: {p['records']:,} SHA-256 records validated and stored",
            build_seconds,
            "s",
            floor=hash_floor,
            floor_name="sha256 of the same bytes",
            higher_is_better=False,
        ),
        fig(
            "build: records/s",
            p["records"] / build_seconds,
            "records/s",
        ),
        fig("manifest: built from the serial's snapshot", manifest_seconds * ms, "ms"),
        fig("manifest: signed (Ed25519) and hashed", sign_seconds * ms, "ms"),
        fig(
            f"delta for {p['changes']:,} replaced records",
            len(delta),
            "bytes",
            floor=len(b2),
            floor_name="the full file",
            higher_is_better=False,
        ),
        fig("delta computed on the server", delta_compute * ms, "ms"),
        fig("agent: verification (signature, server, serial)", phases["verify"] * ms, "ms"),
        fig(
            "agent: delta fetched, applied and checked",
            phases["delta"] * ms,
            "ms",
            floor=apply_floor * ms,
            floor_name="read + sha256 of the result",
            higher_is_better=False,
        ),
        fig("agent: engine loaded from the new directory", phases["engine_load"] * ms, "ms"),
        fig(
            "agent: swap (directory rename + engine assignment)",
            updated["swap_seconds"] * ms,
            "ms",
            floor=swap_floor * ms,
            floor_name="bare symlink rename + fsync",
            higher_is_better=False,
        ),
        fig("agent: whole update (manifest GET to State sent)", updated["total_seconds"], "s"),
        fig(
            "scan loop: longest gap overlapping the swap",
            updated["swap_longest_gap"] * ms,
            "ms",
            floor=updated["idle_longest_gap"] * ms,
            floor_name="longest gap, no update",
            higher_is_better=False,
        ),
        fig(
            "scan loop: longest gap during the whole update",
            updated["update_longest_gap"] * ms,
            "ms",
            floor=updated["idle_longest_gap"] * ms,
            floor_name="longest gap, no update",
            higher_is_better=False,
        ),
        fig("agent: RSS with the old engine loaded", updated["rss_before"] / mib, "MiB"),
        fig(
            "agent: peak RSS during the update (old and new engine)",
            updated["rss_update_peak"] / mib,
            "MiB",
        ),
        fig(
            "agent: peak RSS of the process (incl. loading the old engine at start)",
            updated["rss_process_peak"] / mib,
            "MiB",
        ),
    ]
    targets = [
        target(
            "scanning does not pause at the swap (longest scan gap overlapping it)",
            round(updated["swap_longest_gap"] * ms, 2),
            100.0,
            at_most=True,
            unit="ms",
        ),
        target(
            "a delta costs at most 10% more than the changed lines themselves",
            round(len(delta) / changed_bytes, 3),
            1.1,
            at_most=True,
            unit="x changed lines",
        ),
    ]
    return {
        "scenario": "content",
        "title": "Signed content at scale: a hashes rule set built, signed, delta'd, swapped",
        "figures": figures,
        "targets": targets,
        "details": {
            "records": p["records"],
            "changes": p["changes"],
            "file_bytes": len(b2),
            "changed_lines_bytes": changed_bytes,
            "delta_bytes_received": updated["received_bytes"],
            "manifest_bytes": manifest_bytes,
            "version_2_build_seconds": round(build2_seconds, 3),
            "first_install_seconds": round(first["seconds"], 3),
            "scans_during_run": updated["scans"],
            "longest_scan_gap_in_phase": updated["longest_gap_in"],
            # A phase shorter than the 10 ms sampling has no sample: left out.
            "agent_peak_rss_mib_in_phase": {
                k: round(v / mib, 1) for k, v in updated["peak_rss_in"].items() if v
            },
            "database": "SQLite (WAL)" if database_url is None else "PostgreSQL",
        },
        "notes": [
            "Server side in this process through the real service code "
            "(`content.service.add_version`, `service.manifest` + `signing.sign`, "
            "`delivery.line_delta`); a 1M-record rule set (≈ 90 MB) is above the admin API's "
            "default request body limit (`max_body_bytes`, 10 MiB), so it is stored the way "
            "the service stores an upload, not over HTTP (bench/content.py).",
            "Agent side in a child process against a real `garrison serve` on the same "
            "database: `content.sync.update` with the old engine loaded and a thread scanning "
            "a sample (whose hash only version 2 holds) back to back; the sample must be "
            "missed before the swap and detected after it, or the run fails. A change is "
            "C records removed (spread through the file) and C new ones appended.",
        ],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "enroll":
        print(json.dumps(agent_enroll(Path(argv[1]), argv[2], argv[3])))
        return 0
    if argv and argv[0] == "update":
        print(json.dumps(agent_update(Path(argv[1]), argv[2], int(argv[3]))))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.content", description=__doc__)
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="garrison-bench-content-") as tmp:
        print(json.dumps(run(args.size, Path(tmp), args.database_url), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
