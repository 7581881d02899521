"""What every scenario shares: sizes, servers pinned to a core, the load generator's core,
process sampling (/proc), percentiles, enrollment and seeding of stations, result records.

Layout on a 2-core machine: the server under test runs on core 0 (``taskset -c 0``), the
load generator (wrk, or this process for the Python-driven scenarios) on core 1, so the
generator never steals the server's CPU.  With one core both share it and the results say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- cores --------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on loopback now (the tests' live servers use it too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def layout() -> tuple[int | None, int | None]:
    """(server core, load-generator core), or (None, None) when they must share."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2 and shutil.which("taskset"):
        return cpus[0], cpus[1]
    return None, None


SERVER_CPU, LOAD_CPU = layout()


def taskset(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


@contextlib.contextmanager
def on_core(cpu: int | None) -> Iterator[None]:
    """Run this process (and the threads and processes it starts) on one core."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def on_load_core() -> contextlib.AbstractContextManager[None]:
    """The generator's core: for the Python-driven load of the server scenarios."""
    return on_core(LOAD_CPU)


def on_server_core() -> contextlib.AbstractContextManager[None]:
    """The server's core: for scenarios that measure Garrison's code in-process while a
    receiver runs on the generator's core."""
    return on_core(SERVER_CPU)


def raise_fd_limit(want: int = 1 << 20) -> int:
    """Thousands of agents mean thousands of sockets on both sides (children inherit): the
    soft limit up to ``want`` (capped by fs.nr_open), raising the hard limit too when
    this process may (root, CAP_SYS_RESOURCE), else up to the hard limit.  A generator of
    100,000 agents that stops at a hard limit of 20,000 fails its own connects with EMFILE
    and reports them as the server's errors (bench/findings.md, issue 20)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/sys/fs/nr_open") as f:
        want = min(want, int(f.read()))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
    target = hard if hard != resource.RLIM_INFINITY else want
    if soft < min(target, want):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, want), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- servers ------------------------------------------------------------------------------


def runjobs_body(agent_id: int, uuid: str, job_id: int) -> bytes:
    """A successful Runjobs report, as the Armadito agent sends it."""
    now = int(time.time())
    return orjson.dumps(
        {
            "agent_id": agent_id,
            "agent_version": "0.10.1",
            "uuid": uuid,
            "task": {
                "name": "Runjobs",
                "antivirus": {
                    "name": "Armadito",
                    "version": "0.12.8",
                    "program_path": "",
                    "os_info": {"name": "linux", "libpath": "Linux"},
                },
                "obj": {
                    "job_id": job_id,
                    "code": 0,
                    "message": "runJob successful",
                    "start_time": now,
                    "end_time": now,
                },
            },
        }
    )


@dataclass
class Server:
    """A server under test: ``garrison serve`` or the floor app, in its own process."""

    kind: str
    url: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    database_url: str | None = None

    @property
    def token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    data_dir: Path,
    database_url: str | None = None,
    *,
    kind: str = "garrison",
    extra_env: dict[str, str] | None = None,
    cpu: int | None = SERVER_CPU,
    wait: float = 60,
    floor_workers: int = 1,
) -> Server:
    """``garrison serve`` (or, for ``kind="floor"``, the bare Starlette app, in
    ``floor_workers`` processes) on ``cpu`` (None: every core)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    env["GARRISON_LOG_LEVEL"] = "warning"
    if database_url:
        env["GARRISON_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if kind == "garrison":
        command = [
            sys.executable,
            "-m",
            "garrison.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--tls",
            "off",  # the measurements are of the application, as before TLS was the default
        ]
        health = "/admin/v1/health"
    else:
        command = [sys.executable, "-m", "bench.floor_app", "--port", str(port)]
        command += ["--workers", str(floor_workers)]
        health = "/health"
    log_path = data_dir.parent / f"{data_dir.name}-{kind}-{port}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [*taskset(cpu), *command], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    server = Server(kind, url, port, data_dir, process, log_path, database_url)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{kind} server exited early:\n{server.log_tail()}")
        try:
            if httpx.get(url + health, timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{kind} server did not become healthy:\n{server.log_tail()}")


# -- databases ----------------------------------------------------------------------------


def scratch_url(base_url: str, suffix: str) -> str:
    """A scratch database next to the one given (same server, name + suffix), emptied and
    migrated: benchmarks never write into the database the operator named."""
    from sqlalchemy.engine import make_url

    from bench.ingest import _reset

    url = make_url(base_url)
    name = f"{url.database or 'garrison_bench'}_{suffix}"
    out = url.set(database=name).render_as_string(hide_password=False)
    _reset(out)
    return out


def sqlite_url(directory: Path, name: str = "garrison.db") -> str:
    return f"sqlite:///{(directory / name).resolve()}"


# What a stored event takes on disk with its search terms and indexes, measured on 200,000
# seeded events of the sensor mix (bench/findings.md, "An event log that stays flat"); used
# only before the first level, when the database cannot tell its own size per event yet.
BYTES_PER_EVENT = {"postgresql": 2_650, "sqlite": 1_500}
# Room kept free beyond the estimate: the database's own temporary files and the system's.
DISK_MARGIN = 1.2


@dataclass
class DiskRoom:
    needed_bytes: int
    free_bytes: int | None  # None: the database is elsewhere, its disk cannot be read here

    @property
    def fits(self) -> bool:
        return self.free_bytes is None or self.needed_bytes <= self.free_bytes

    def reason(self, events: int) -> str:
        free = "unknown" if self.free_bytes is None else f"{self.free_bytes / 1e9:.0f} GB"
        return (
            f"{events:,} events need about {self.needed_bytes / 1e9:.0f} GB more of disk "
            f"for the database; {free} free"
        )


def database_bytes(url: str) -> tuple[int, Path | None]:
    """The database's size on disk and the directory it lives in (None when the server is
    not on this machine, so its disk cannot be inspected)."""
    from sqlalchemy import create_engine, text

    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        size = sum(f.stat().st_size for f in path.parent.glob(path.name + "*") if f.is_file())
        return size, path.parent
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            size = int(
                conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
            )
            host = conn.execute(text("SELECT inet_server_addr()")).scalar()
            where: Path | None = None
            if host is None or str(host).startswith(("127.", "::1")):
                directory = conn.execute(text("SELECT current_setting('data_directory')")).scalar()
                where = Path(str(directory)) if directory else None
    finally:
        engine.dispose()
    return size, where


def disk_room(url: str, stored: int, more: int) -> DiskRoom:
    """Whether ``more`` events fit beside the ``stored`` ones: their size estimated from what
    the database takes per event so far (or the measured constant for an empty log), and
    compared with the free space of the disk the database is on."""
    size, where = database_bytes(url)
    kind = "sqlite" if url.startswith("sqlite") else "postgresql"
    per_event = size / stored if stored >= 100_000 else BYTES_PER_EVENT[kind]
    needed = int(more * per_event * DISK_MARGIN)
    if where is None or not where.exists():
        return DiskRoom(needed, None)
    return DiskRoom(needed, shutil.disk_usage(where).free)


def migrate_to_head(url: str) -> None:
    from garrison.server.store import migrate

    migrate.upgrade(url)


# -- stations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Agent:
    id: int
    uuid: str
    token: str

    @property
    def getjobs_path(self) -> str:
        return f"/api/jobs?agent_id={self.id}&antivirus=Armadito&agent_id={self.id}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}


def envelope(agent_id: int, uuid: str, task: str, obj: Any) -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "agent_version": "0.10.1",
        "uuid": uuid,
        "task": {
            "name": task,
            "antivirus": {
                "name": "Armadito",
                "version": "0.12.8",
                "program_path": "",
                "os_info": {"name": "linux", "libpath": "Linux"},
            },
            "obj": obj,
        },
    }


def new_uuid() -> str:
    return str(uuidlib.uuid4()).upper()


def enrollment_key(server: Server, uses: int, expires_in: int = 86400) -> str:
    r = httpx.post(
        f"{server.url}/admin/v1/enrollment-keys",
        headers=server.admin,
        json={"uses": uses, "expires_in": expires_in},
        timeout=30,
    )
    r.raise_for_status()
    key: str = r.json()["key"]
    return key


def enroll_api(server: Server, count: int, concurrency: int = 32) -> tuple[list[Agent], float]:
    """Enroll ``count`` agents through ``POST /api/agents`` with one multi-use key,
    concurrently (asyncio + httpx).  Returns the agents and the seconds it took."""
    key = enrollment_key(server, count)

    async def main() -> list[Agent]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(count):
            queue.put_nowait(i)
        out: list[Agent] = []

        async def worker(client: httpx.AsyncClient) -> None:
            while True:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                uuid = new_uuid()
                body = envelope(0, uuid, "Enrollment", {"key": key})
                for attempt in range(5):
                    r = await client.post("/api/agents", json=body)
                    if r.status_code == 200:
                        break
                    await asyncio.sleep(0.2 * (attempt + 1))
                r.raise_for_status()
                data = r.json()
                out.append(Agent(data["agent_id"], uuid, data["agent_token"]))

        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return out

    started = time.perf_counter()
    with on_load_core():
        agents = asyncio.run(main())
    return sorted(agents, key=lambda a: a.id), time.perf_counter() - started


def seed_stations_service(database_url: str, count: int) -> tuple[list[Agent], float]:
    """Stations and tokens written with the server's own code
    (``garrison.server.stations.service.enroll``), in one transaction."""
    from garrison.server.stations import service as stations
    from garrison.server.store.engine import Database

    db = Database(database_url)
    started = time.perf_counter()
    out: list[Agent] = []
    try:
        with db.transaction() as session:
            for i in range(count):
                identity = stations.Identity(
                    uuid=new_uuid(),
                    hostname=f"ws-{i:06d}",
                    antivirus_name="Armadito",
                    os_name="linux",
                    address="127.0.0.1",
                )
                station, token, _ = stations.enroll(session, identity, None)
                out.append(Agent(station.id, station.uuid, token))
    finally:
        db.dispose()
    return out, time.perf_counter() - started


def seed_stations_bulk(
    database_url: str, count: int, *, first: int = 0, chunk: int = 20_000
) -> tuple[list[Agent], float]:
    """Stations with tokens by plain executemany INSERTs of the real table (the growth
    scenario needs 100,000 of them in seconds)."""
    from sqlalchemy import insert, select

    from garrison.common.tokens import new_token, token_hash
    from garrison.server.stations.models import Station
    from garrison.server.store.base import utcnow
    from garrison.server.store.engine import Database

    db = Database(database_url)
    started = time.perf_counter()
    now = utcnow()
    out: list[Agent] = []
    try:
        for start in range(first, first + count, chunk):
            rows, tokens = [], {}
            for i in range(start, min(first + count, start + chunk)):
                uuid, token = new_uuid(), new_token("gst")
                tokens[uuid] = token
                rows.append(
                    {
                        "uuid": uuid,
                        "hostname": f"ws-{i:07d}",
                        "os_name": "linux",
                        "os_platform": "Linux",
                        "address": "127.0.0.1",
                        "mac": "",
                        "antivirus_name": "Armadito",
                        "antivirus_version": "0.12.8",
                        "agent_version": "0.10.1",
                        "agent_kind": "armadito",
                        "token_hash": token_hash(token),
                        "enrolled_at": now,
                        "last_seen": now,
                        "connected": True,
                    }
                )
            with db.engine.begin() as conn:
                conn.execute(insert(Station), rows)
                ids = conn.execute(
                    select(Station.id, Station.uuid).where(Station.uuid.in_(list(tokens)))
                ).all()
            out.extend(Agent(sid, uuid, tokens[uuid]) for sid, uuid in ids)
    finally:
        db.dispose()
    return sorted(out, key=lambda a: a.id), time.perf_counter() - started


def seeded_database(
    directory: Path, database_url: str | None, count: int, *, bulk: bool = False
) -> tuple[str, list[Agent], float]:
    """A migrated database holding ``count`` stations seeded with the server's own code,
    before the server starts (one 10,000-station transaction would hold SQLite's write lock
    for seconds under a running server).  ``database_url`` is an already-reset PostgreSQL
    scratch database, or None for SQLite in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    url = database_url or sqlite_url(directory)
    if database_url is None:
        migrate_to_head(url)
    seed = seed_stations_bulk if bulk else seed_stations_service
    agents, seconds = seed(url, count) if count else ([], 0.0)
    return url, agents, seconds


def touch_stations(database_url: str) -> None:
    """Every station seen just now: a restarted server must not sweep them as silent."""
    from sqlalchemy import update

    from garrison.server.stations.models import Station
    from garrison.server.store.base import utcnow
    from garrison.server.store.engine import Database

    db = Database(database_url)
    try:
        with db.engine.begin() as conn:
            conn.execute(update(Station).values(last_seen=utcnow(), connected=True))
    finally:
        db.dispose()


# -- measuring ----------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_seconds_with_reaped(pid: int) -> float:
    """utime + stime, plus cutime + cstime: the children this process waited for (a
    procedure worker killed and replaced, a worker the supervisor restarted).  Summed over
    a tree, a live child counts in its own entry and a reaped one in its parent's."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / CLK_TCK


def peak_rss_bytes() -> int:
    """This process's peak RSS since its exec (``VmHWM``).  Not ``getrusage``'s
    ``ru_maxrss``: Linux carries that over ``execve`` from the forked child of the parent,
    so a small side process started by a large bench driver reported the driver's size
    (683 MiB for an 84 MiB agent after the 100k fleet had run in the same driver)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_bytes(pid: int) -> int:
    """VmRSS of a process, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a `garrison serve --workers N` supervisor's workers)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    queue += [int(child) for child in f.read().split()]
    return found


def _tree_sum(measure: Callable[[int], float], pid: int) -> float:
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            total += measure(member)
    return total


def processes_named(name: str) -> list[int]:
    """Every process on this machine whose command name is ``name`` (``postgres``: the
    database's postmaster and its backends)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def cpu_of_named(name: str) -> float:
    """The CPU seconds of every process named ``name``, with the children they reaped (the
    postmaster reaps its exited backends, so their time stays counted)."""
    total = 0.0
    for pid in processes_named(name):
        with contextlib.suppress(OSError):
            total += cpu_seconds_with_reaped(pid)
    return total


@dataclass
class Sampler:
    """Samples a process's CPU and RSS once a second in a thread; with ``tree``, summed over
    the process and its descendants (a worker that died takes its CPU time with it)."""

    pid: int
    interval: float = 1.0
    tree: bool = False
    rss: list[int] = field(default_factory=list)
    _cpu0: float = 0.0
    _t0: float = 0.0
    _cpu1: float = 0.0
    _t1: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _cpu(self) -> float:
        if self.tree:
            return _tree_sum(cpu_seconds_with_reaped, self.pid)
        return cpu_seconds(self.pid)

    def _rss(self) -> int:
        return int(_tree_sum(rss_bytes, self.pid)) if self.tree else rss_bytes(self.pid)

    def start(self) -> Sampler:
        self._cpu0, self._t0 = self._cpu(), time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError):
                self.rss.append(self._rss())

    def stop(self) -> dict[str, float]:
        self._cpu1, self._t1 = self._cpu(), time.monotonic()
        self.rss.append(self._rss())
        self._stop.set()
        if self._thread:
            self._thread.join()
        wall = max(self._t1 - self._t0, 1e-9)
        return {
            "server_cpu_percent": round(100 * (self._cpu1 - self._cpu0) / wall, 1),
            "server_rss_max_mib": round(max(self.rss) / 2**20, 1),
            "server_rss_end_mib": round(self.rss[-1] / 2**20, 1),
        }


def fig(
    name: str,
    value: float,
    unit: str,
    *,
    floor: float | None = None,
    floor_name: str | None = None,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """One reported figure; when a floor is given the ratio is value/floor for rates
    (higher is better) and floor/value for times."""
    out: dict[str, Any] = {"name": name, "value": round(value, 4), "unit": unit}
    if floor is not None and floor > 0 and value > 0:
        out["floor"] = round(floor, 4)
        out["floor_name"] = floor_name or "floor"
        out["ratio"] = round(value / floor if higher_is_better else floor / value, 4)
    return out


def target(
    text: str, value: float | None, threshold: float, *, at_most: bool = False, unit: str = ""
) -> dict[str, Any]:
    if value is None:
        met: bool | None = None
    else:
        met = value <= threshold if at_most else value >= threshold
    return {
        "target": text,
        "value": value,
        "threshold": threshold,
        "comparison": "<=" if at_most else ">=",
        "unit": unit,
        "met": met,
    }


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    from importlib.metadata import PackageNotFoundError, version

    for name in (
        "garrison",
        "uvicorn",
        "starlette",
        "fastapi",
        "sqlalchemy",
        "httptools",
        "uvloop",
        "orjson",
        "psycopg",
        "lupa",
        "httpx",
    ):
        with contextlib.suppress(PackageNotFoundError):
            versions[name] = version(name)
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        versions["wrk"] = (out.stdout or out.stderr).split("[")[0].replace("wrk", "").strip()
    import sqlite3

    versions["sqlite"] = sqlite3.sqlite_version
    mem = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) * 1024
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "server_cpu": SERVER_CPU,
        "load_cpu": LOAD_CPU,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def scenario_main(run: Any, sizes: list[str], description: str) -> None:
    """``python -m bench.<scenario>``: run one scenario alone and print its JSON."""
    import argparse
    import json
    import tempfile

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size", choices=sizes, default="tiny")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args.size, Path(tmp), args.database_url), indent=2))
