"""Request-rate measurement: wrk (compiled, so the generator is not the bottleneck) pinned to
the load core, with a Lua script for the Authorization header; a Python fallback when wrk
is missing (the results then say ``"tool": "python"``, and its rates are a lower bound).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import LOAD_CPU, Agent, on_load_core, percentile, taskset
from bench.rawhttp import Connection

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def header_script(path: Path, headers: dict[str, str]) -> Path:
    """Static headers: wrk builds the request once, as cheap as a bare wrk run."""
    lines = [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def agents_script(path: Path, agents: list[Agent]) -> Path:
    """Each request checks in as the next agent of the list (every station in turn)."""
    tokens = path.with_suffix(".tokens")
    tokens.write_text("".join(f"{a.id} {a.token}\n" for a in agents))
    path.write_text(
        f"""
local ids, tokens = {{}}, {{}}
for line in io.lines({_lua_string(str(tokens))}) do
  local id, token = line:match("^(%d+) (%S+)$")
  ids[#ids + 1] = id
  tokens[#tokens + 1] = "Bearer " .. token
end
local n, i = #ids, 0
function init(args)
  i = math.random(n) - 1
end
function request()
  i = i % n + 1
  local id = ids[i]
  return wrk.format("GET", "/api/jobs?agent_id=" .. id .. "&antivirus=Armadito&agent_id=" .. id,
                    {{["Authorization"] = tokens[i], ["Content-Type"] = "application/json"}})
end
"""
    )
    return path


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(text: str) -> dict[str, Any]:
    """The figures of ``wrk --latency`` output."""
    out: dict[str, Any] = {}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        out["requests_per_second"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in ([\d.]+\w+),", text):
        out["requests"] = int(m.group(1))
        out["seconds"] = _ms(m.group(2)) / 1000
    for pct in ("50", "75", "90", "99"):
        if m := re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M):
            out[f"p{pct}_ms"] = round(_ms(m.group(1)), 3)
    if m := re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", text):
        out["mean_ms"] = round(_ms(m.group(1)), 3)
        out["max_ms"] = round(_ms(m.group(3)), 3)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(g) for g in sock.groups()) if sock else 0
    if "requests_per_second" not in out or "p99_ms" not in out:
        raise ValueError(f"could not read wrk output:\n{text}")
    return out


def run_wrk(
    url: str, script: Path, seconds: float, connections: int, threads: int = 1
) -> dict[str, Any]:
    command = [
        *taskset(LOAD_CPU),
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + 60
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr or done.stdout}")
    result = parse_wrk(done.stdout)
    result.update(tool="wrk", connections=connections, threads=threads)
    return result


def run_python(
    url: str, requests: list[tuple[str, dict[str, str]]], seconds: float, connections: int
) -> dict[str, Any]:
    """The fallback generator: ``connections`` keep-alive connections in a loop."""
    host, port = url.removeprefix("http://").split(":")

    async def main() -> tuple[list[float], int, float]:
        latencies: list[float] = []
        errors = 0
        stop = time.perf_counter() + seconds

        async def loop(offset: int) -> None:
            nonlocal errors
            conn = Connection(host, int(port))
            i = offset
            while time.perf_counter() < stop:
                path, headers = requests[i % len(requests)]
                i += 1
                t0 = time.perf_counter()
                try:
                    reply = await conn.request("GET", path, headers)
                    if reply.status != 200:
                        errors += 1
                except (OSError, asyncio.IncompleteReadError):
                    errors += 1
                    conn.close()
                latencies.append(time.perf_counter() - t0)
            conn.close()

        started = time.perf_counter()
        await asyncio.gather(*(loop(i * 7919) for i in range(connections)))
        return latencies, errors, time.perf_counter() - started

    with on_load_core():
        latencies, errors, elapsed = asyncio.run(main())
    ms = [x * 1000 for x in latencies]
    return {
        "tool": "python",
        "connections": connections,
        "requests": len(ms),
        "seconds": round(elapsed, 3),
        "requests_per_second": round(len(ms) / elapsed, 1),
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(sum(ms) / max(1, len(ms)), 3),
        "max_ms": round(max(ms, default=0), 3),
        "non_2xx": errors,
        "socket_errors": 0,
    }


def measure(
    base_url: str,
    workdir: Path,
    seconds: float,
    connections: int,
    *,
    path: str = "/api/jobs",
    headers: dict[str, str] | None = None,
    agents: list[Agent] | None = None,
    warmup: float = 1.0,
) -> dict[str, Any]:
    """Requests/s and latency of GETs: one request with ``headers``, or every agent's
    Getjobs in turn.  wrk when installed, else the Python generator."""
    if have_wrk():
        workdir.mkdir(parents=True, exist_ok=True)
        if agents:
            script = agents_script(workdir / "agents.lua", agents)
            url = base_url + "/"
        else:
            script = header_script(workdir / "headers.lua", headers or {})
            url = base_url + path
        if warmup:
            run_wrk(url, script, warmup, connections)
        return run_wrk(url, script, seconds, connections)
    plan = [(a.getjobs_path, a.headers) for a in agents] if agents else [(path, headers or {})]
    if warmup:
        run_python(base_url, plan, warmup, connections)
    return run_python(base_url, plan, seconds, connections)
