"""The Lua sandbox, as a worker process runs it: no io, os.execute, require, load, debug,
string.dump, no Python object reachable; a CPU budget that a procedure cannot get around;
and nothing of one run left for the next."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from garrison.server.procedures.host import _int
from garrison.server.procedures.sandbox import Limits
from garrison.server.procedures.workers import WorkerPool
from tests.conftest import Server
from tests.support import SLACK_SECONDS, sqlite_only

LIMITS = Limits(instructions=5_000_000, memory_bytes=16 * 1024 * 1024, seconds=0.5)
POOL: WorkerPool | None = None


def reads(fn: str, args: list[Any]) -> Any:
    if fn == "station":
        return {"id": _int(args[0] if args else None, "station id"), "groups": ["a"]}
    return None


@pytest.fixture(scope="module", autouse=True)
def pool() -> Iterator[WorkerPool]:
    global POOL
    POOL = WorkerPool(1, LIMITS.memory_bytes)
    yield POOL
    POOL.close()
    POOL = None


def outcome(source: str, args: dict[str, Any] | None = None) -> tuple[str, Any]:
    """("ok", value) or ("error", message) of one run in a worker."""
    if POOL is None:
        raise RuntimeError("no pool")
    reply = POOL.run("threat_detected", source, args or {}, LIMITS, reads)
    return ("error", reply.error) if reply.error is not None else ("ok", reply.value)


def nil_global(name: str, kind: str = "call") -> tuple[str, str]:
    verb = "call" if kind == "call" else "index"
    return (
        "error",
        f"runtime error: threat_detected:1: attempt to {verb} a nil value (global '{name}')",
    )


def nil_field(name: str) -> tuple[str, str]:
    return (
        "error",
        f"runtime error: threat_detected:1: attempt to call a nil value (field '{name}')",
    )


def not_a_table(field: str) -> tuple[str, str]:
    """A host function is a Lua closure: there is no Python object behind it to reach."""
    return (
        "error",
        f"runtime error: threat_detected:1: attempt to index a function value (field '{field}')",
    )


ESCAPES: list[tuple[str, tuple[str, Any]]] = [
    ("return io.open('/etc/passwd')", nil_global("io", "index")),
    ("return io", ("ok", None)),
    ("return os.execute('id')", nil_field("execute")),
    ("return os.exit(1)", nil_field("exit")),
    ("return os.remove('/tmp/garrison-sandbox')", nil_field("remove")),
    ("return os.getenv('HOME')", nil_field("getenv")),
    ("return require('os')", nil_global("require")),
    ("return package.loadlib('libc.so.6', 'system')", nil_global("package", "index")),
    ("return load('return 1')", nil_global("load")),
    ("return loadstring('return 1')", nil_global("loadstring")),
    ("return dofile('/etc/passwd')", nil_global("dofile")),
    ("return loadfile('/etc/passwd')", nil_global("loadfile")),
    ("return debug.getinfo(1)", nil_global("debug", "index")),
    ("return debug", ("ok", None)),
    ("return string.dump(function() end)", nil_field("dump")),
    # The string metatable is locked: what method calls use cannot be reached or changed.
    ("return getmetatable('')", ("ok", "string")),
    (
        "getmetatable('').__index.upper = nil",
        (
            "error",
            "runtime error: threat_detected:1: attempt to index a nil value (field '__index')",
        ),
    ),
    ("return collectgarbage('count')", nil_global("collectgarbage")),
    ("return python.eval('1')", nil_global("python", "index")),
    ("return coroutine.wrap(function() end)", nil_global("coroutine", "index")),
    ("return rawget(_G, 'io')", ("ok", None)),
    ("return _G.os.execute", ("ok", None)),
    ("return garrison.log.__globals__", not_a_table("log")),
    ("return garrison.log.__code__", not_a_table("log")),
    ("return garrison.log.__class__", not_a_table("log")),
    ("return garrison.station.__closure__", not_a_table("station")),
    # A refused host call is a Lua error with a message, not a Python exception object.
    ("local ok, e = pcall(garrison.station, 'x') return e.__traceback__", ("ok", None)),
    (
        "local ok, e = pcall(garrison.station, 'x') return tostring(e)",
        ("ok", "station id must be an integer"),
    ),
]


@pytest.mark.parametrize(("source", "expected"), ESCAPES, ids=[s for s, _ in ESCAPES])
def test_sandbox_escapes_fail(source: str, expected: tuple[str, Any]) -> None:
    assert outcome(source) == expected


def test_what_a_procedure_may_use_works() -> None:
    source = """local args = ...
local t = {}
for w in string.gmatch(args.path, "[^/]+") do t[#t + 1] = w:upper() end
table.sort(t)
return {table.concat(t, ","), math.max(3, 9), os.time{year=2020, month=1, day=1, hour=0} > 0,
        utf8.char(72, 105), select("#", 1, 2, 3), tostring(nil), type(os.date("*t")),
        garrison.station(5).groups[1]}
"""
    assert outcome(source, {"path": "/tmp/scan/me"}) == (
        "ok",
        ["ME,SCAN,TMP", 9, True, "Hi", 3, "nil", "table", "a"],
    )


def test_state_does_not_leak_from_one_call_to_the_next() -> None:
    """One warm Lua state runs every call: each gets its own globals and library tables."""
    assert outcome(
        "leaked = 'yes'; string.secret = 1; table.insert = nil; math.pi = 3; "
        "os.time = nil; _G.x = 1; return leaked"
    ) == ("ok", "yes")
    assert outcome(
        "return {leaked == nil, string.secret == nil, table.insert ~= nil, math.pi > 3.1, "
        "os.time ~= nil, x == nil, ('a'):upper()}"
    ) == ("ok", [True, True, True, True, True, True, "A"])


# What one run may try to leave behind for the next, in the warm state every run shares.
LEAVE_BEHIND = """local args = ...
leaked = 'global'
_G.also = 'via _G'
string.format = function() return 'hijacked' end
string.secret, table.secret, math.pi, utf8.secret = 1, 1, 3, 1
os.time = nil
rawset(table, 'insert', false)
garrison.station = function() return 'hijacked' end
args.virus, args.extra = 'changed', 'added'
setmetatable(_G, {__index = function() return 'from a metatable' end})
local refused = {}
for _, t in ipairs({string, table, math, utf8, os, garrison}) do
  refused[#refused + 1] = not pcall(setmetatable, t, {__index = function() return 'leak' end})
end
refused[#refused + 1] = not pcall(function() getmetatable('').__index.upper = nil end)
return refused
"""
LOOK_FOR_IT = """local args = ...
return {leaked == nil, also == nil, string.format('%d', 7), ('%d'):format(7),
        string.secret == nil, table.secret == nil, math.pi > 3.14, utf8.secret == nil,
        os.time ~= nil, table.insert ~= nil, garrison.station(3).id, args.virus,
        args.extra == nil, anything_else == nil, string.nothing == nil, ('a'):upper()}
"""
CLEAN = [
    True,
    True,
    "7",
    "7",
    True,
    True,
    True,
    True,
    True,
    True,
    3,
    "Eicar",
    True,
    True,
    True,
    "A",
]


def test_nothing_one_event_leaves_reaches_the_next() -> None:
    """Globals, library tables (stored into, replaced, given a metatable), the host table,
    the event's own table and the string metatable: all as they were for the next event,
    which runs in the same worker's Lua state."""
    args = {"virus": "Eicar"}
    assert outcome(LEAVE_BEHIND, args) == ("ok", [True] * 7)
    assert outcome(LOOK_FOR_IT, args) == ("ok", CLEAN)


def test_a_chunk_compiled_once_starts_fresh_every_run() -> None:
    """The same procedure's chunk is compiled once, but its locals and upvalues, and what it
    stores in its globals, are new every run."""
    source = (
        "local seen = {}\n"
        "local n = 0\n"
        "local function bump() n = n + 1 seen[#seen + 1] = n return n end\n"
        "counter = (counter or 0) + 1\n"
        "return {bump(), #seen, counter}"
    )
    for _ in range(3):
        assert outcome(source) == ("ok", [1, 1, 1])
    # A changed source is compiled anew, not served from what was compiled before.
    assert outcome(source.replace("n = n + 1", "n = n + 2")) == ("ok", [2, 1, 1])


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        ("error('boom')", "runtime error: threat_detected:"),
        ("error(setmetatable({}, {}))", "runtime error: table: "),
        ("while true do end", "cpu budget exceeded"),
        ("local t = {} while true do t[#t + 1] = {} end", "memory limit of"),
        ("return garrison.recent_alerts(function() end)", "runtime error: "),
    ],
    ids=["error", "error object", "cpu budget", "memory limit", "host refusal"],
)
def test_a_run_that_fails_leaves_no_trace(ending: str, expected: str) -> None:
    source = LEAVE_BEHIND.replace("return refused", ending)
    kind, message = outcome(source, {"virus": "Eicar"})
    assert kind == "error", message
    assert message.startswith(expected), message
    assert outcome(LOOK_FOR_IT, {"virus": "Eicar"}) == ("ok", CLEAN)


def test_a_run_past_its_deadline_leaves_no_trace() -> None:
    """The worker is killed; the next run has a fresh one."""
    source = LEAVE_BEHIND.replace(
        "return refused",
        "return string.find(string.rep('a', 60), string.rep('a?', 60)..string.rep('a', 60))",
    )
    kind, message = outcome(source, {"virus": "Eicar"})
    assert (kind, message) == ("error", f"time limit of {LIMITS.seconds:g} s exceeded")
    assert outcome(LOOK_FOR_IT, {"virus": "Eicar"}) == ("ok", CLEAN)


def test_a_finalizer_left_in_a_global_runs_before_the_next_run() -> None:
    """An object with a __gc kept reachable by the run's own environment is collected with
    it, before the worker answers: its finalizer never runs during the next run."""
    kept = "keep = setmetatable({}, {__gc = function() garrison.log('finalized') end}) return 1"
    if POOL is None:
        raise RuntimeError("no pool")
    reply = POOL.run("threat_detected", kept, {}, LIMITS, reads)
    assert reply.logs == ["finalized"], reply
    later = POOL.run("threat_detected", "return 2", {}, LIMITS, reads)
    assert (later.value, later.logs) == (2, []), later


def test_each_kind_of_runaway_is_stopped() -> None:
    for source, expected in (
        ("while true do end", "cpu budget exceeded"),
        ("local function f() return f() end return f()", "cpu budget exceeded"),
        (
            "repeat local ok = pcall(function() while true do end end) until false",
            "cpu budget exceeded",
        ),
        (
            "local t = {} while true do t[#t + 1] = {} end",
            "memory limit of 16777216 bytes exceeded",
        ),
        ("return string.rep('x', 1024 * 1024 * 1024)", "memory limit of 16777216 bytes exceeded"),
        ("error('boom')", "runtime error: threat_detected:1: boom"),
        ("error({})", "runtime error: table: "),
    ):
        started = time.monotonic()
        kind, message = outcome(source)
        assert kind == "error", source
        assert message.startswith(expected), (source, message)
        assert time.monotonic() - started < LIMITS.seconds + SLACK_SECONDS, source


def test_xpcall_with_a_handler_cannot_swallow_the_cpu_budget() -> None:
    source = (
        "xpcall(function() while true do end end, function(e) return 'swallowed' end)\n"
        "return 'ran past its budget'"
    )
    assert outcome(source) == ("error", "cpu budget exceeded")


def test_a_close_handler_cannot_swallow_the_cpu_budget() -> None:
    source = (
        "pcall(function()\n"
        "  local guard <close> = setmetatable({}, {__close = function() error('other') end})\n"
        "  while true do end\n"
        "end)\n"
        "return 'ran past its budget'"
    )
    assert outcome(source) == ("error", "cpu budget exceeded")


def test_a_pathological_pattern_is_stopped_within_the_budget() -> None:
    started = time.monotonic()
    kind, message = outcome("return string.find(string.rep('a', 120), '.-.-.-.-b')")
    elapsed = time.monotonic() - started
    # No budget can stop a pattern inside C: such patterns are refused up front.
    assert (kind, message) == (
        "error",
        "runtime error: pattern too complex for a procedure "
        "(more than 3 repetitions on a long string)",
    )
    assert elapsed < LIMITS.seconds + 1


@sqlite_only
def test_sandbox_escapes_fail_through_the_dry_run_endpoint(server: Server) -> None:
    for source, error in (
        ("return os.execute('touch /tmp/garrison-owned')", nil_field("execute")[1]),
        ("return io.open('/etc/passwd'):read('a')", nil_global("io", "index")[1]),
        ("return require('io')", nil_global("require")[1]),
        ("return load(string.dump(print))", nil_field("dump")[1]),
        ("return garrison.log.__globals__", not_a_table("log")[1]),
        ("return garrison.create_job.__self__", not_a_table("create_job")[1]),
    ):
        response = server.admin.post(
            "/procedures/threat_detected/test", {"args": {}, "source": source}
        )
        assert response.status_code == 200, response.text
        assert (response.json()["error"], response.json()["result"]) == (error, None), source


def test_a_worker_is_retired_after_its_runs() -> None:
    """One warm state serves a worker's runs, up to max_runs: then a fresh worker."""
    pool = WorkerPool(1, LIMITS.memory_bytes, max_runs=3)
    try:
        pids = []
        for _ in range(6):
            assert pool.run("threat_detected", "return 1", {}, LIMITS, reads).value == 1
            pids.append(pool.live_pids())
        assert pids[0] == pids[1], pids
        assert pids[2] == [], pids  # retired at its third run's check-in
        assert pids[3] == pids[4], pids
        assert pids[0] != pids[3], pids
    finally:
        pool.close()


def test_more_procedures_than_the_compiled_cache_holds_each_run_their_own_source() -> None:
    """Past the cache's bound (64 chunks) it starts over: every source still runs as itself."""
    for n in [*range(70), 0, 69]:
        assert outcome(f"return {n}") == ("ok", n)
