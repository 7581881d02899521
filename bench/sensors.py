"""The endpoint sensors' cost: the agent's process sensor (and file sensor) beside a bare
loop reading the same kernel source, while a generator runs execs (or file creations) at a
paced rate.

    python -m bench.sensors [--size tiny|full] [--profile OUT.pstats]

Three processes per measurement, so each figure is one process's own:

- the **side** under test, pinned to the server core: either the floor (the process
  connector's socket read in a loop, events parsed and counted by pid, nothing else) or the
  agent's real classes (``ProcessSensor`` → ``Emitter`` → ``Spool`` in a temporary
  directory, the ``[sensors]`` defaults: rate limit, queue, hash cache; no server: the
  spool only fills);
- the **generator** on the load core: ``posix_spawn("/bin/true")`` at the target rate,
  reaping as it goes; it writes the pids it spawned (the marker the events are matched
  by: pids are reused on a busy host, so a pid counts at most as many times as it was
  spawned, and the agent's events must also name /bin/true or say the path was
  unreadable);
- this process, which starts both, tells the side when the load starts and stops, and
  collects the side's JSON.

The side's CPU is ``getrusage(RUSAGE_SELF)`` from the start of the load until it has
drained what the load produced (all its threads); RSS is its peak (``VmHWM``).
Capture = events reported ÷ execs generated; every missing event must be a counted drop
(rate limit, queue, spool, or the kernel's own losses found by the connector's sequence
numbers): what is missing beyond the counted drops is reported as uncounted.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

SIZES: dict[str, dict[str, Any]] = {
    # 500 execs/s is the "1,000 events/s" (each exec is a start and a stop event).
    "tiny": {"rates": [200, 500, 1000], "seconds": 1.0, "file_rate": 500, "file_seconds": 1.0},
    "full": {
        "rates": [200, 500, 1000, 5000],
        "seconds": 20.0,
        "file_rate": 1000,
        "file_seconds": 20.0,
    },
}
TRUE = "/bin/true"
# The image the generator spawns and the agent's events are matched by: /bin/true, or (the
# top rate, ``--image tiny``) a static ELF that only calls exit_group, written at run time:
# no dynamic loader, so the spawn costs the kernel's fork/exec/exit only.
IMAGE_ENV = "GARRISON_BENCH_IMAGE"


def image() -> str:
    return os.environ.get(IMAGE_ENV) or TRUE


def write_tiny_elf(path: Path) -> Path:
    """A 137-byte x86-64 ELF executable: ``exit_group(0)``.  Its last 8 bytes are unique to
    this run (its hash is nobody else's)."""
    import struct

    base = 0x400000
    code = b"\x31\xff" + b"\xb8\xe7\x00\x00\x00" + b"\x0f\x05"  # xor edi,edi; mov eax,231
    size = 64 + 56 + len(code) + 8
    header = struct.pack(
        "<16sHHIQQQIHHHHHH",
        b"\x7fELF\x02\x01\x01" + b"\x00" * 9,
        2,  # ET_EXEC
        62,  # EM_X86_64
        1,
        base + 64 + 56,  # entry: the code after the headers
        64,  # program headers right after this one
        0,
        0,
        64,
        56,
        1,
        0,
        0,
        0,
    )
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    path.write_bytes(header + segment + code + os.urandom(8))
    path.chmod(0o755)
    return path


MIB = 1024 * 1024
# The bench spool may hold the whole run: with no server to send to, the agent's default
# 64 MiB would fill at 1,000 execs/s in about 20 s and measure the spool's size instead.
SPOOL_BYTES = 4096 * MIB


# -- the generators -------------------------------------------------------------------------


# Generator processes above ONE_WORKER_RATE, on every core (GARRISON_BENCH_WORKERS: another
# count, to find the machine's top rate).
SPAWN_WORKERS = int(os.environ.get("GARRISON_BENCH_WORKERS") or 8)
ONE_WORKER_RATE = 1500


def generate_execs(rate: float, seconds: float, out: Path, workers: int | None = None) -> None:
    """Spawn /bin/true ``rate`` times a second for ``seconds`` from ``workers`` processes
    (forked here, each paced at its share), merging their pids into ``out``.  posix_spawn
    blocks its caller until the child has exec'd (vfork), so one process spends most of
    its time waiting on the child: several spawn side by side."""
    if workers is None:
        workers = 1 if rate <= ONE_WORKER_RATE else SPAWN_WORKERS
    if workers <= 1:
        _spawn_loop(rate, seconds, out)
        return
    children: list[tuple[int, Path]] = []
    for k in range(workers):
        part = out.with_name(f"{out.name}.{k}")
        pid = os.fork()
        if pid == 0:
            try:
                _spawn_loop(rate / workers, seconds, part)
            finally:
                os._exit(0)
        children.append((pid, part))
    pids: list[int] = []
    elapsed = 0.0
    for pid, part in children:
        os.waitpid(pid, 0)
        load = json.loads(part.read_text())
        pids += load["pids"]
        elapsed = max(elapsed, load["seconds"])
        part.unlink()
    out.write_text(json.dumps({"pids": pids, "seconds": elapsed, "workers": workers}))


def _spawn_loop(rate: float, seconds: float, out: Path) -> None:
    """One generator: posix_spawn at ``rate``, reaping as it goes; never more than a short
    burst behind schedule (a machine that cannot keep up runs slower, and the achieved
    rate says so)."""
    env = dict(os.environ)
    spawned_image = image()
    pids: list[int] = []
    started = time.perf_counter()
    spawned = 0
    while True:
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            break
        due = min(int(elapsed * rate) + 1, spawned + 20)
        while spawned < due:
            pids.append(os.posix_spawn(spawned_image, [spawned_image], env))
            spawned += 1
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        ahead = spawned / rate - (time.perf_counter() - started)
        if ahead > 0:
            time.sleep(min(ahead, 0.01))
    elapsed = time.perf_counter() - started
    with contextlib.suppress(ChildProcessError):
        while True:
            os.waitpid(-1, 0)
    out.write_text(json.dumps({"pids": pids, "seconds": elapsed}))


def generate_files(rate: float, seconds: float, directory: Path, out: Path) -> None:
    """Create, write and close small files in ``directory`` at ``rate`` a second."""
    names: list[str] = []
    started = time.perf_counter()
    made = 0
    payload = b"x" * 256
    while True:
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            break
        due = min(int(elapsed * rate) + 1, made + 20)
        while made < due:
            name = f"f{made:08d}.dat"
            fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, payload)
            os.close(fd)
            names.append(name)
            made += 1
        ahead = made / rate - (time.perf_counter() - started)
        if ahead > 0:
            time.sleep(min(ahead, 0.01))
    out.write_text(json.dumps({"names": names, "seconds": time.perf_counter() - started}))


# -- the side under test -----------------------------------------------------------------------


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _thread_cpu() -> dict[str, float]:
    """CPU-seconds so far of each of this process's threads, by Python thread name (the
    kernel's per-task counters: which thread the side's CPU went to)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(task), f"task-{task}")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _matched(generated: Counter[Any], seen: Counter[Any]) -> int:
    return sum(min(n, seen[key]) for key, n in generated.items())


class Floor:
    """The bare loop: the connector's datagrams parsed and counted, nothing else."""

    def __init__(self, rcvbuf: int) -> None:
        from garrison.agent.sensors.procconn import ProcConnector

        self.conn = ProcConnector(rcvbuf, timeout=0.2)
        self.execs: Counter[int] = Counter()
        self.exits: Counter[int] = Counter()
        self.events = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from garrison.agent.sensors.procconn import Exec, Exit

        while not self._stop.is_set():
            for event in self.conn.recv():
                self.events += 1
                if isinstance(event, Exec) and event.pid == event.tgid:
                    self.execs[event.pid] += 1
                elif isinstance(event, Exit) and event.pid == event.tgid:
                    self.exits[event.pid] += 1

    def progress(self) -> int:
        return self.events

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.conn.close()

    def results(self, pids: Counter[int]) -> dict[str, Any]:
        return {
            "started": _matched(pids, self.execs),
            "stopped": _matched(pids, self.exits),
            "counted_drops": self.conn.lost,
            "kernel_lost": self.conn.lost,
            "enobufs": self.conn.overflows,
        }


class Agent:
    """The agent's own classes, as ``garrison-agent run`` wires them (the process sensor
    alone: the module sensor, an observer of it, is not part of this measurement)."""

    def __init__(self, workdir: Path, profiler: cProfile.Profile | None = None) -> None:
        """``profiler``: run the sensor's reading thread (where its work is) under it."""
        from garrison.agent.config import SensorsConfig
        from garrison.agent.sensors.emitter import Emitter
        from garrison.agent.sensors.hashes import HashCache
        from garrison.agent.sensors.process import ProcessSensor
        from garrison.agent.spool import Spool

        cfg = SensorsConfig()
        self.spool_path = workdir / "spool.db"
        self.spool = Spool(self.spool_path, max_bytes=SPOOL_BYTES)
        self.hashes = HashCache(cfg.hash_inline_max, cfg.hash_max_size)
        self.emitter = Emitter(self.spool, cfg.rate_per_second, cfg.burst, cfg.spool_share)
        self.sensor = ProcessSensor(self.hashes, cfg.redact, cfg.netlink_rcvbuf)
        self.writer_profile: cProfile.Profile | None = None
        if profiler is not None:
            loop = self.sensor._run
            self.sensor._run = lambda: profiler.runcall(loop)  # type: ignore[method-assign]
            # The spool writer is the agent's other busy thread: profiled on its own.
            writer, write = cProfile.Profile(time.thread_time), self.emitter._run
            self.emitter._run = lambda: writer.runcall(write)  # type: ignore[method-assign]
            self.writer_profile = writer
        self.emitter.start()
        if not self.sensor.start(self.emitter):
            raise RuntimeError(f"the process sensor did not start: {self.sensor.reason}")

    def progress(self) -> int:
        c = self.sensor.counters
        return c.produced + c.dropped + self.emitter.pending()

    def stop(self) -> None:
        self.sensor.stop()
        self.emitter.stop()
        self.hashes.close()

    def results(self, pids: Counter[int]) -> dict[str, Any]:
        spawned = image()
        real = os.path.realpath(spawned)
        started: Counter[int] = Counter()
        stopped: Counter[int] = Counter()
        unread: Counter[int] = Counter()  # gone before /proc was read: no command line
        rows = self.spool.db.execute("SELECT body, size FROM messages").fetchall()
        body_bytes = 0
        for body, size in rows:
            body_bytes += size
            event = json.loads(body)
            data = event["data"]
            path = data.get("file_path")
            if path not in (spawned, real) and "file_path" not in data.get("unavailable", ""):
                continue
            if event["type"] == "process_started":
                started[data["pid"]] += 1
                if "command_line" in data.get("unavailable", ""):
                    unread[data["pid"]] += 1
            elif event["type"] == "process_stopped":
                stopped[data["pid"]] += 1
        self.spool.close()
        files = sum(
            p.stat().st_size for p in self.spool_path.parent.glob(self.spool_path.name + "*")
        )
        counters = self.sensor.counters.snapshot()
        return {
            "started": _matched(pids, started),
            "stopped": _matched(pids, stopped),
            "started_unread": _matched(pids, unread),
            # Execs whose real uid/gid were carried (UID/GID events) vs read from /proc.
            "ids_carried": self.sensor.ids_carried,
            "ids_read": self.sensor.ids_read,
            "counted_drops": counters["dropped"] + counters["overflows"],
            "counters": counters,
            "kernel_lost": counters["overflows"],
            "enobufs": self.sensor.enobufs,
            "spool_events": len(rows),
            "spool_body_bytes_per_event": body_bytes / len(rows) if rows else 0.0,
            "spool_file_bytes_per_event": files / len(rows) if rows else 0.0,
        }


class FileFloor:
    """fanotify read bare: the same group and marks as the file sensor, records parsed and
    counted by name (the directory handle is not resolved)."""

    def __init__(self, directory: Path) -> None:
        from garrison.agent.sensors import fanotify as fan

        self.fan = fan
        self.fd = fan.init(fan.FAN_CLASS_NOTIF | fan.FAN_REPORT_DFID_NAME | fan.FAN_CLOEXEC)
        fan.mark(
            self.fd,
            fan.FAN_MARK_ADD | fan.FAN_MARK_FILESYSTEM,
            fan.FAN_CREATE | fan.FAN_CLOSE_WRITE | fan.FAN_ONDIR,
            str(directory),
        )
        self.names: Counter[str] = Counter()
        self.events = 0
        self.overflows = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import select

        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(200):
                continue
            try:
                buf = os.read(self.fd, 256 * 1024)
            except BlockingIOError:
                continue
            for event in self.fan.parse_events(buf):
                self.events += 1
                if event.overflow:
                    self.overflows += 1
                    continue
                entry = event.dir_entry()
                if entry is not None and event.mask & self.fan.FAN_CREATE:
                    self.names[entry.name or ""] += 1

    def progress(self) -> int:
        return self.events

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self.fd)

    def results(self, names: Counter[str]) -> dict[str, Any]:
        return {
            "created": _matched(names, self.names),
            "counted_drops": self.overflows,
            "kernel_lost": self.overflows,
        }


class FileAgent:
    """The agent's file sensor watching the directory, into a spool of its own."""

    def __init__(self, workdir: Path, directory: Path) -> None:
        from garrison.agent.config import SensorsConfig
        from garrison.agent.sensors.emitter import Emitter
        from garrison.agent.sensors.files import FileSensor
        from garrison.agent.sensors.hashes import HashCache
        from garrison.agent.spool import Spool

        cfg = SensorsConfig()
        self.directory = directory
        self.spool_path = workdir / "spool.db"
        self.spool = Spool(self.spool_path, max_bytes=SPOOL_BYTES)
        self.hashes = HashCache(cfg.hash_inline_max, cfg.hash_max_size)
        self.emitter = Emitter(self.spool, cfg.rate_per_second, cfg.burst, cfg.spool_share)
        self.emitter.start()
        self.sensor = FileSensor(self.hashes, [str(directory)], [], cfg.file_hash_wait)
        if not self.sensor.start(self.emitter):
            raise RuntimeError(f"the file sensor did not start: {self.sensor.reason}")

    def progress(self) -> int:
        c = self.sensor.counters
        return c.produced + c.dropped + self.emitter.pending()

    def stop(self) -> None:
        self.sensor.stop()
        self.emitter.stop()
        self.hashes.close()

    def results(self, names: Counter[str]) -> dict[str, Any]:
        seen: Counter[str] = Counter()
        rows = self.spool.db.execute("SELECT body, size FROM messages").fetchall()
        body_bytes = 0
        for body, size in rows:
            body_bytes += size
            event = json.loads(body)
            data = event["data"]
            inside = str(data.get("file_path", "")).startswith(f"{self.directory}/")
            if event["type"] == "file_created" and inside:
                seen[data.get("file_name")] += 1
        self.spool.close()
        counters = self.sensor.counters.snapshot()
        return {
            "created": _matched(names, seen),
            "counted_drops": counters["dropped"] + counters["overflows"],
            "counters": counters,
            "kernel_lost": counters["overflows"],
            "spool_events": len(rows),
            "spool_body_bytes_per_event": body_bytes / len(rows) if rows else 0.0,
        }


def _settle(progress: Any, quiet: float = 0.4, limit: float = 60.0) -> None:
    """Until the side has taken everything the load made: its count still for ``quiet``."""
    deadline = time.monotonic() + limit
    last, since = progress(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = progress()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def side(kind: str, workdir: Path, directory: Path | None, profile: Path | None) -> None:
    """The side under test, driven over stdin: ``go`` when the load starts, then
    ``stop <marker file>`` when the generator is done; answers one JSON line."""
    from bench.common import peak_rss_bytes

    # Timed by each thread's own CPU clock: what a function costs, not how long it waited.
    profiler = cProfile.Profile(time.thread_time) if profile is not None else None
    if kind == "floor":
        subject: Any = Floor(8 * MIB)
    elif kind == "agent":
        subject = Agent(workdir, profiler)
    elif kind == "file-floor" and directory is not None:
        subject = FileFloor(directory)
    elif kind == "file-agent" and directory is not None:
        subject = FileAgent(workdir, directory)
    else:
        raise SystemExit(f"unknown side {kind!r}")
    print("ready", flush=True)
    line = sys.stdin.readline().strip()
    if line != "go":
        raise SystemExit(f"expected go, got {line!r}")
    cpu0, t0, threads0 = _cpu_seconds(), time.monotonic(), _thread_cpu()
    line = sys.stdin.readline().strip()
    command, _, marker = line.partition(" ")
    if command != "stop":
        raise SystemExit(f"expected stop, got {line!r}")
    _settle(subject.progress)
    cpu1, t1, threads1 = _cpu_seconds(), time.monotonic(), _thread_cpu()
    rss_now = _rss_mib()
    subject.stop()
    if profiler is not None and profile is not None:
        profiler.dump_stats(str(profile))
        writer = getattr(subject, "writer_profile", None)
        if writer is not None:
            writer.dump_stats(str(profile) + ".writer")
    load = json.loads(Path(marker).read_text())
    keys: Counter[Any] = Counter(load["pids"] if "pids" in load else load["names"])
    out = {
        "cpu_seconds": cpu1 - cpu0,
        "wall_seconds": t1 - t0,
        "cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0),
        "threads_cpu_seconds": {
            name: round(threads1[name] - threads0.get(name, 0.0), 2) for name in threads1
        },
        "rss_peak_mib": peak_rss_bytes() / (1024 * 1024),
        "rss_end_mib": rss_now,
        **subject.results(keys),
    }
    print(json.dumps(out), flush=True)


# -- one measurement ------------------------------------------------------------------------------


def _python(*args: str, cpu: int | None) -> list[str]:
    from bench.common import taskset

    return [*taskset(cpu), sys.executable, "-m", "bench.sensors", *args]


def measure(
    kind: str,
    rate: float,
    seconds: float,
    workdir: Path,
    directory: Path | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One side under one load: the side started and ready, the generator run, the
    side's figures with the generator's count and achieved rate."""
    from bench.common import LOAD_CPU, ROOT, SERVER_CPU

    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    args = ["side", kind, "--workdir", str(workdir)]
    if directory is not None:
        args += ["--directory", str(directory)]
    if profile is not None:
        args += ["--profile", str(profile)]
    proc = subprocess.Popen(
        _python(*args, cpu=SERVER_CPU),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        if proc.stdin is None or proc.stdout is None:
            raise RuntimeError("the side's pipes are missing")
        ready = proc.stdout.readline().strip()
        if ready != "ready":
            raise RuntimeError(f"the {kind} side did not start (exit {proc.wait()})")
        marker = workdir / "load.json"
        if directory is not None:
            for old in directory.iterdir():
                old.unlink()
            generator = ["generate-files", str(rate), str(seconds), str(directory), str(marker)]
        else:
            generator = ["generate-execs", str(rate), str(seconds), str(marker)]
        proc.stdin.write("go\n")
        proc.stdin.flush()
        # Past what one core spawns (about 1,100-1,300 /bin/true a second here), the
        # generator's workers run on every core, the side's too: its CPU-seconds per event
        # still measure it; its share of a core is then a lower bound on contention.
        spread = directory is None and rate > ONE_WORKER_RATE
        subprocess.run(
            _python(*generator, cpu=None if spread else LOAD_CPU),
            check=True,
            env=env,
            timeout=seconds + 120,
        )
        proc.stdin.write(f"stop {marker}\n")
        proc.stdin.flush()
        answer = proc.stdout.readline()
        if proc.wait(timeout=120) != 0 or not answer:
            raise RuntimeError(f"the {kind} side failed (exit {proc.returncode})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
    result: dict[str, Any] = json.loads(answer)
    load = json.loads(marker.read_text())
    generated = len(load["pids"] if "pids" in load else load["names"])
    result["generated"] = generated
    result["achieved_rate"] = generated / load["seconds"]
    result["load_seconds"] = load["seconds"]
    result["generator_workers"] = load.get("workers", 1)
    if kind.startswith("file"):
        missing = generated - result["created"]
        result["capture"] = result["created"] / generated if generated else 0.0
    else:
        missing = (generated - result["started"]) + (generated - result["stopped"])
        result["capture"] = result["started"] / generated if generated else 0.0
        result["capture_stopped"] = result["stopped"] / generated if generated else 0.0
    result["missing"] = missing
    result["uncounted"] = max(0, missing - result["counted_drops"])
    return result


# -- the scenario ------------------------------------------------------------------------------


def _problem() -> str | None:
    if not sys.platform.startswith("linux"):
        return "needs Linux (the kernel process connector)"
    if os.geteuid() != 0:
        return "needs root (the process connector and fanotify)"
    try:
        from garrison.agent.sensors.procconn import ProcConnector

        ProcConnector(64 * 1024).close()
    except OSError as exc:
        return f"the process connector is unavailable: {exc}"
    return None


@contextlib.contextmanager
def _tmpfs(base: Path) -> Any:
    """A tmpfs of its own (the file sensor marks a whole filesystem), or None."""
    mount = base / "watched"
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256m,mode=1777", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        yield None, done.stderr.strip() or "mount failed"
        return
    try:
        yield mount, ""
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@contextlib.contextmanager
def _image(path: Path | None) -> Any:
    """The generator's image (and the sides' match) for what runs inside; None: /bin/true."""
    before = os.environ.get(IMAGE_ENV)
    if path is not None:
        os.environ[IMAGE_ENV] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(IMAGE_ENV, None)
        else:
            os.environ[IMAGE_ENV] = before


def run(size: str, workdir: Path, profile: Path | None = None) -> dict[str, Any]:
    from bench.common import LOAD_CPU, fig, target

    p = SIZES[size]
    problem = _problem()
    if problem:
        return {
            "scenario": "sensors",
            "title": "Endpoint sensors: agent CPU, RSS and capture under exec and file load",
            "figures": [],
            "targets": [],
            "details": {"skipped": problem},
            "notes": [f"Not measured here: {problem}."],
        }
    rows: list[dict[str, Any]] = []
    for rate in p["rates"]:
        # Past one worker's rate, the tiny static image: /bin/true's dynamic loading capped
        # the generator at about 1,570 execs/s on this 2-core host (bench/findings.md).
        tiny = rate > ONE_WORKER_RATE
        with _image(write_tiny_elf(workdir / "tiny-exit") if tiny else None):
            floor = measure("floor", rate, p["seconds"], workdir / f"floor-{rate}")
            prof = profile if (profile is not None and rate == 1000) else None
            agent = measure("agent", rate, p["seconds"], workdir / f"agent-{rate}", profile=prof)
        rows.append(
            {"rate": rate, "floor": floor, "agent": agent, "image": "tiny" if tiny else TRUE}
        )
    files: dict[str, Any] | None = None
    file_note = ""
    with _tmpfs(workdir / "files") as (mount, why):
        if mount is None:
            file_note = f"file creations not measured: cannot mount a tmpfs ({why})"
        else:
            files = {
                "rate": p["file_rate"],
                "floor": measure(
                    "file-floor", p["file_rate"], p["file_seconds"], workdir / "ffloor", mount
                ),
                "agent": measure(
                    "file-agent", p["file_rate"], p["file_seconds"], workdir / "fagent", mount
                ),
            }
    figures: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    for row in rows:
        rate, a, f = row["rate"], row["agent"], row["floor"]
        label = f"{rate:,} execs/s (achieved {a['achieved_rate']:,.0f})"
        figures += [
            fig(
                f"{label}: events handled per CPU-second",
                2 * a["generated"] / max(a["cpu_seconds"], 1e-6),
                "events/CPU-s",
                floor=2 * f["generated"] / max(f["cpu_seconds"], 1e-6),
                floor_name="bare connector loop",
            ),
            fig(f"{label}: agent CPU", a["cpu_percent"], "% of a core"),
            fig(f"{label}: floor CPU", f["cpu_percent"], "% of a core"),
            fig(f"{label}: agent RSS (peak)", a["rss_peak_mib"], "MiB"),
            fig(
                f"{label}: capture (process_started)",
                100 * a["capture"],
                "%",
                floor=100 * f["capture"] if f["capture"] > 0 else None,
                floor_name="bare connector loop",
            ),
            fig(f"{label}: counted drops", a["counted_drops"], "events"),
            fig(f"{label}: uncounted losses", a["uncounted"], "events"),
        ]
    by_rate = {row["rate"]: row["agent"] for row in rows}
    at_1000 = by_rate.get(1000)
    if at_1000 is not None:
        figures.append(
            fig("spool bytes per event (JSON body)", at_1000["spool_body_bytes_per_event"], "bytes")
        )
        figures.append(
            fig(
                "spool bytes per event (file, WAL included)",
                at_1000["spool_file_bytes_per_event"],
                "bytes",
            )
        )
        targets.append(
            target(
                "capture ≥ 99.9% at 1,000 execs/s",
                round(100 * at_1000["capture"], 3),
                99.9,
                unit="%",
            )
        )
    # The issue sets the cost at 1,000 events/s: 500 execs/s (a start and a stop each).
    at_500 = by_rate.get(500)
    if at_500 is not None:
        targets += [
            target(
                "agent ≤ 15% of one core at 1,000 events/s (500 execs/s)",
                round(at_500["cpu_percent"], 2),
                15,
                at_most=True,
                unit="% of a core",
            ),
            target(
                "agent RSS ≤ 150 MiB at 1,000 events/s (500 execs/s)",
                round(at_500["rss_peak_mib"], 1),
                150,
                at_most=True,
                unit="MiB",
            ),
        ]
    if at_1000 is not None:
        # Not the target: the same bound at twice its rate, kept to show the margin.
        targets.append(
            target(
                "agent ≤ 15% of one core at 2,000 events/s (1,000 execs/s; twice the issue's rate)",
                round(at_1000["cpu_percent"], 2),
                15,
                at_most=True,
                unit="% of a core",
            )
        )
    top = max(by_rate)
    targets.append(
        target(
            f"every missing event counted at {top:,} execs/s (uncounted losses)",
            by_rate[top]["uncounted"],
            0,
            at_most=True,
            unit="events",
        )
    )
    if files is not None:
        fa, ff = files["agent"], files["floor"]
        label = f"{files['rate']:,} file creations/s (achieved {fa['achieved_rate']:,.0f})"
        figures += [
            fig(
                f"{label}: files handled per CPU-second",
                fa["generated"] / max(fa["cpu_seconds"], 1e-6),
                "files/CPU-s",
                floor=ff["generated"] / max(ff["cpu_seconds"], 1e-6),
                floor_name="bare fanotify loop",
            ),
            fig(f"{label}: agent CPU", fa["cpu_percent"], "% of a core"),
            fig(f"{label}: agent RSS (peak)", fa["rss_peak_mib"], "MiB"),
            fig(f"{label}: capture (file_created)", 100 * fa["capture"], "%"),
            fig(f"{label}: uncounted losses", fa["uncounted"], "events"),
        ]
        targets.append(
            target(
                f"file sensor ≤ 15% of one core at {files['rate']:,} files/s",
                round(fa["cpu_percent"], 2),
                15,
                at_most=True,
                unit="% of a core",
            )
        )
    slow = [row["rate"] for row in rows if row["agent"]["achieved_rate"] < 0.95 * row["rate"]]
    notes = [
        "Agent = the real ProcessSensor → Emitter → Spool (SQLite, synchronous=FULL) with the "
        "[sensors] defaults (rate limit 2,000 events/s, burst 10,000), no server; floor = the "
        "same connector socket read in a loop, events parsed and counted (bench/sensors.py). "
        "Each exec is two events (process_started, process_stopped): 1,000 execs/s is 2,000 "
        "events/s.",
        "CPU is the side's getrusage over the load plus its drain, % of one core; the side "
        "runs pinned to core 0, the generator to core 1"
        + ("" if LOAD_CPU is not None else " (one core: they share it)")
        + ". Other processes of the host exec too and are handled (not matched): the "
        "figures include them.",
        "Capture matches events to the generator's child pids (a pid counts at most as often "
        "as it was spawned, the event must name /bin/true or say its path was unreadable). "
        "Counted drops = the sensor's rate-limit, queue and spool drops plus the kernel's "
        "losses found by the connector's per-CPU sequence numbers; uncounted = missing "
        "events beyond them.",
    ]
    if slow:
        notes.append(
            "The generator did not reach "
            + ", ".join(f"{r:,}" for r in slow)
            + " execs/s on this machine (posix_spawn of /bin/true; above "
            + f"{ONE_WORKER_RATE:,}/s from {SPAWN_WORKERS} processes on every core, the "
            + "side's included): the achieved rate is in each figure's name."
        )
    if file_note:
        notes.append(file_note)
    details: dict[str, Any] = {
        "seconds_per_rate": p["seconds"],
        "achieved_execs_per_second": {
            str(row["rate"]): round(row["agent"]["achieved_rate"]) for row in rows
        },
        "agent_counters": {str(row["rate"]): row["agent"]["counters"]["dropped"] for row in rows},
        "kernel_lost": {str(row["rate"]): row["agent"]["kernel_lost"] for row in rows},
        "floor_kernel_lost": {str(row["rate"]): row["floor"]["kernel_lost"] for row in rows},
        "floor_capture_percent": {
            str(row["rate"]): round(100 * row["floor"]["capture"], 3) for row in rows
        },
    }
    return {
        "scenario": "sensors",
        "title": "Endpoint sensors: agent CPU, RSS and capture under exec and file load",
        "figures": figures,
        "targets": targets,
        "details": details,
        "notes": notes,
        "raw": {"execs": rows, "files": files},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    run_p = sub.add_parser("run", help="the scenario (the default)")
    run_p.add_argument("--size", choices=list(SIZES), default="tiny")
    run_p.add_argument(
        "--profile", type=Path, default=None, help="cProfile of the agent at 1,000/s"
    )
    side_p = sub.add_parser("side")
    side_p.add_argument("kind")
    side_p.add_argument("--workdir", type=Path, required=True)
    side_p.add_argument("--directory", type=Path, default=None)
    side_p.add_argument("--profile", type=Path, default=None)
    prof = sub.add_parser("profile", help="cProfile of the agent's sensor thread")
    prof.add_argument("--rate", type=float, default=1000)
    prof.add_argument("--seconds", type=float, default=20)
    prof.add_argument("--out", type=Path, required=True)
    gen = sub.add_parser("generate-execs")
    gen.add_argument("rate", type=float)
    gen.add_argument("seconds", type=float)
    gen.add_argument("out", type=Path)
    genf = sub.add_parser("generate-files")
    genf.add_argument("rate", type=float)
    genf.add_argument("seconds", type=float)
    genf.add_argument("directory", type=Path)
    genf.add_argument("out", type=Path)
    args = parser.parse_args(sys.argv[1:] or ["run"])
    if args.command == "side":
        side(args.kind, args.workdir, args.directory, args.profile)
    elif args.command == "profile":
        with tempfile.TemporaryDirectory(prefix="garrison-sensors-") as tmp:
            found = measure("agent", args.rate, args.seconds, Path(tmp), profile=args.out)
        print(json.dumps({k: v for k, v in found.items() if k != "counters"}, indent=2))
    elif args.command == "generate-execs":
        generate_execs(args.rate, args.seconds, args.out)
    elif args.command == "generate-files":
        generate_files(args.rate, args.seconds, args.directory, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="garrison-sensors-") as tmp:
            print(json.dumps(run(args.size, Path(tmp), args.profile), indent=2))


if __name__ == "__main__":
    main()
