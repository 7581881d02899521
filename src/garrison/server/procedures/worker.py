"""A procedure worker process: ``python -m garrison.server.procedures.worker``.

The server starts a few of these (:mod:`garrison.server.procedures.workers`) and sends them
procedure runs over a pipe (:mod:`garrison.server.procedures.protocol`).  Whatever a run
does, the server's process is not where it happens: a loop the budget cannot see (a
``__gc`` finalizer, a backtracking pattern inside C, a conversion of a huge table) spends
this process's time, until the server's wall-clock deadline kills it, or the kernel does
(``RLIMIT_CPU``; ``RLIMIT_AS`` bounds its memory).

One warm Lua state serves every run, each in an environment of its own:

- the library tables and ``garrison`` as fresh empty tables reading through to shared ones
  they cannot reach (a locked metatable), and globals that start empty, so that what a run
  sets is gone for the next;
- the procedure compiled once (by name and source) and loaded from its bytecode for every
  run with that run's environment as ``_ENV``: its locals and upvalues start fresh;
- the string metatable is locked (``__metatable``): ``getmetatable('')`` gives a string,
  not the table method calls go through, so a run cannot change what the next one calls;
- its own instruction budget (a count hook, which ``pcall``, ``xpcall`` handlers and
  ``__close`` cannot swallow) and its own memory cap (the Lua allocator);
- a full garbage collection after a run that gave an object a finalizer (``__gc``) or
  failed, or once the state has grown by :data:`GROWN_BYTES`, before the worker answers,
  so that the run's ``__gc`` finalizers run within its own deadline, never during the next
  run (a run that made none leaves only garbage no later run can reach);
- the host API (``garrison.*``) as Lua closures, made once: no Python object is reachable
  from Lua.  Reads go to the server and back (``call``); writes are collected and sent with
  the outcome, for the server to apply after the run.

The server sends runs in batches (``runs``: several events' runs in one message); they run
one after another exactly as single runs would, each answered with its own ``done``.  What
a batch shares is only the answers to its host reads: a read asked again in the batch (the
same function and arguments) is answered from the first answer, as a fresh Lua value.

A worker is retired after :data:`~garrison.server.procedures.workers.MAX_RUNS` runs (and
killed on a deadline), so nothing a long series of runs might accumulate lives for ever.

This module imports nothing of the server but the protocol and the argument caps: a
worker holds no database connection and no setting.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import threading
import time
from typing import Any

import orjson
from lupa import lua54

from garrison.server.procedures import protocol

HOOK_EVERY = 1000
# What one run may hand over: items of all tables in a value, and bytes of its strings.
MAX_VALUE_ITEMS = 10_000
MAX_VALUE_BYTES = 256 * 1024
MAX_ACTIONS = 100
MAX_LOGS = 100
MAX_LOG_CHARS = 2000
# Lua memory a worker's state may grow by over its size after the last full collection
# before the collection after a run is a full one again (runs that fail or make a finalizer
# always get one).
GROWN_BYTES = 2 * 1024 * 1024
# Instructions the collection after a run may take (the finalizers run with hooks off:
# only the deadline bounds them; this bounds what our own cleanup code may do).
CLEANUP_INSTRUCTIONS = 1_000_000
READS = (
    "station",
    "recent_alerts",
    "groups",
    "group_stations",
    "jobs",
    "scans",
    "state",
    "config",
    "recent_events",
    "allow_station",
)
# Host reads one run may make: each is a round trip to the server and a read transaction.
MAX_READS = 50
# Distinct reads (function and arguments) a batch remembers the answer of, and the bytes of
# those answers: within one ``runs`` message a read asked again is answered as it was the
# first time, without a round trip (see docs/procedures.md, "Batches").  Each run still
# gets a fresh Lua value built from the answer, and counts the read against its MAX_READS.
MAX_ANSWERS = 1024
MAX_ANSWER_BYTES = 8 * 1024 * 1024
WRITES = (
    "create_job",
    "raise_alert",
    "audit",
    "log",
    # Live response (issue 17): applied after the run like create_job, rate-limited there.
    "isolate",
    "kill_process",
    "get_file",
    "start_hunt",
)

_PRELUDE = r"""
local raw_pcall, raw_xpcall, raw_error, raw_tostring = pcall, xpcall, error, tostring
local rawequal, select, type, pairs, setmetatable = rawequal, select, type, pairs, setmetatable
local sethook, load, collectgarbage = debug.sethook, load, collectgarbage
local dump = string.dump
string.dump = nil

-- Lua patterns run inside C, where no budget reaches: refuse the obviously
-- backtracking-heavy ones on long subjects at once.  (What this misses still ends at the
-- deadline, in this process, not the server's.)
local MAX_QUANTIFIERS = 3
local function quantifiers(p)
  local n, i = 0, 1
  while i <= #p do
    local c = p:sub(i, i)
    if c == "%" then i = i + 1
    elseif c == "*" or c == "-" or c == "+" or c == "?" then n = n + 1 end
    i = i + 1
  end
  return n
end
local function checked(fn)
  return function(s, p, ...)
    if type(s) == "string" and type(p) == "string" and #s > 64
        and quantifiers(p) > MAX_QUANTIFIERS then
      raw_error("pattern too complex for a procedure (more than 3 repetitions on a long "
                .. "string)", 2)
    end
    return fn(s, p, ...)
  end
end
string.find = checked(string.find)
string.match = checked(string.match)
string.gmatch = checked(string.gmatch)
string.gsub = checked(string.gsub)
-- Method calls ("x"):find(...) go through the string metatable's __index, the real string
-- table: lock the metatable so no run can reach that table and change it for the next.
getmetatable("").__metatable = "string"

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end
local lib = {
  string = copy(string), table = copy(table), math = copy(math), utf8 = copy(utf8),
  os = {time = os.time, date = os.date, clock = os.clock, difftime = os.difftime},
}
-- Each run sees every library (and ``garrison``) as a fresh empty table reading through to
-- the shared one: what a run stores lands in its own table, gone with it; the shared table
-- is out of reach (the metatable is locked: getmetatable gives false, setmetatable fails).
local function reader(t) return {__index = t, __metatable = false} end
local readers = {}
for k, v in pairs(lib) do readers[k] = reader(v) end
local base = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
  select = select, tonumber = tonumber, tostring = tostring, type = type,
  rawequal = rawequal, rawget = rawget, rawlen = rawlen, rawset = rawset,
  getmetatable = getmetatable,
}

-- The host API as Lua closures, made once (see setup): each run gets a fresh table reading
-- through to them, so what a run stores into ``garrison`` is gone for the next.
local host_api = {}
local host_reader = reader(host_api)

-- Compiled procedures, by name and source: the chunk is compiled once and each run loads
-- its bytecode anew (our own dump, never a run's) with the run's environment as _ENV, so
-- the chunk's upvalues and locals start fresh every run.  Bounded in entries and bytes
-- (sources and bytecode): past either bound the cache starts over.
local MAX_CACHED, MAX_CACHED_BYTES = 64, 8 * 1024 * 1024
local compiled, cached, cached_bytes = {}, 0, 0

-- Whether a run gave an object a finalizer (a __gc metatable): then the collection after
-- the run must be full, so that the finalizer runs within that run's deadline.
local finalizers = false
local function guarded_setmetatable(t, mt)
  -- Lua marks an object for finalization only if its metatable holds __gc (raw) when it is
  -- set: this is the only way a run's object gets one.
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then finalizers = true end
  return setmetatable(t, mt)
end

local function instance(source, name, env)
  local key = name .. "\0" .. source
  local code = compiled[key]
  if code then return load(code, "=" .. name, "b", env) end
  local chunk, err = load(source, "=" .. name, "t", env)
  if not chunk then return nil, err end
  code = dump(chunk)
  local size = #key + #code
  if cached >= MAX_CACHED or cached_bytes + size > MAX_CACHED_BYTES then
    compiled, cached, cached_bytes = {}, 0, 0
  end
  compiled[key], cached, cached_bytes = code, cached + 1, cached_bytes + size
  return chunk
end

local function run(source, name, args, instructions)
  -- Everything a run can reach is made for it here.
  local budget_error = setmetatable({}, {__tostring = function() return "cpu budget exceeded" end})
  local exhausted, used = false, 0
  local function hook()
    used = used + HOOK_EVERY
    if exhausted or used > instructions then
      exhausted = true
      raw_error(budget_error, 0)
    end
  end
  -- Once the budget is spent it stays spent: no pcall, xpcall handler or __close can
  -- swallow it.
  local function rethrow_budget(ok, ...)
    if exhausted or (not ok and rawequal(select(1, ...), budget_error)) then
      exhausted = true
      raw_error(budget_error, 0)
    end
    return ok, ...
  end
  local function guarded_handler(h)
    return function(e)
      if exhausted or rawequal(e, budget_error) then return budget_error end
      return h(e)
    end
  end
  local env = copy(base)
  for k, v in pairs(readers) do env[k] = setmetatable({}, v) end
  env.setmetatable = guarded_setmetatable
  env.pcall = function(f, ...) return rethrow_budget(raw_pcall(f, ...)) end
  env.xpcall = function(f, h, ...)
    return rethrow_budget(raw_xpcall(f, guarded_handler(h), ...))
  end
  env._G = env
  env.garrison = setmetatable({}, host_reader)

  -- Compiling runs no procedure code (see sandbox.check_syntax); outside the hook.
  local loaded, chunk, err = raw_pcall(instance, source, name, env)
  if not loaded then return false, raw_tostring(chunk) end
  if not chunk then return false, "syntax error: " .. raw_tostring(err) end
  sethook(hook, "", HOOK_EVERY)
  local ok, value = raw_pcall(chunk, args)
  -- Still under the hook: an error object's __tostring, __eq or __name run budgeted.
  if exhausted or (not ok and rawequal(value, budget_error)) then
    return false, "cpu budget exceeded"
  end
  if not ok then
    if type(value) == "string" then
      if value == "not enough memory" then return false, value end
      return false, "runtime error: " .. value
    end
    local shown, text = raw_pcall(raw_tostring, value)
    if exhausted then return false, "cpu budget exceeded" end
    if shown and type(text) == "string" then return false, "runtime error: " .. text end
    return false, "runtime error: an error value that cannot be shown"
  end
  return true, value
end

-- After every run, the hook still armed: collect what the run left.  Full when the run made
-- a finalizer (it runs now, in its own run's time, never during the next), failed (what it
-- left is dropped at once) or the state has grown past ``grown`` bytes (Lua counts in KiB);
-- otherwise the incremental collector's ordinary steps are enough: nothing the run left is
-- reachable from the next run (a fresh environment, fresh library tables, a fresh chunk).
local function cleanup(failed, grown)
  if not (finalizers or failed or collectgarbage("count") * 1024 > grown) then
    sethook()
    return false
  end
  finalizers = false
  local used = 0
  sethook(function()
    used = used + HOOK_EVERY
    if used > CLEANUP_INSTRUCTIONS then raw_error("cleanup budget exceeded", 0) end
  end, "", HOOK_EVERY)
  raw_pcall(collectgarbage, "collect")
  sethook()
  return true
end

-- Once, at start: the host functions (Python callables, each returning ok and a value or a
-- message) as Lua closures; no Python object is reachable from a run.
local function setup(host)
  for fname, fn in pairs(host) do
    host_api[fname] = function(...)
      local ok, value = fn(...)
      if not ok then raw_error(value, 2) end
      return value
    end
  end
end

return run, cleanup, setup
""".replace("HOOK_EVERY", str(HOOK_EVERY)).replace(
    "CLEANUP_INSTRUCTIONS", str(CLEANUP_INSTRUCTIONS)
)


# A run's ``done`` waits at most about this long in the worker before it is written (with
# whatever other dones came meanwhile): a batch of quick runs is answered in a few writes,
# not one per run, and the server is woken a few times per batch, not per run.
FLUSH_SECONDS = 0.001
FLUSH_BYTES = 64 * 1024


class _Out:
    """The worker's pipe to the server.  ``now`` writes at once (a host call, the end of a
    batch: the worker then waits for the server); ``soon`` buffers a ``done`` and a thread
    writes it within about FLUSH_SECONDS.  That thread runs while Lua runs (lupa releases
    the GIL while Lua code runs, C functions and finalizers included), so a run's done is
    with the server even if the next run then never ends and the worker is killed: the
    server still knows which runs ended, and which one it killed."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = bytearray()
        self.cond = threading.Condition()
        threading.Thread(target=self._flusher, name="flush", daemon=True).start()

    def now(self, data: bytes) -> None:
        with self.cond:
            self.pending += data
            self._write()

    def soon(self, data: bytes) -> None:
        with self.cond:
            self.pending += data
            if len(self.pending) >= FLUSH_BYTES:
                self._write()
            else:
                self.cond.notify()

    def _write(self) -> None:
        # Under the lock: the pipe's messages stay whole and in order.
        data, self.pending = bytes(self.pending), bytearray()
        protocol.write(self.fd, data)

    def _flusher(self) -> None:
        while True:
            with self.cond:
                while not self.pending:
                    self.cond.wait()
            time.sleep(FLUSH_SECONDS)  # let the next runs' dones join this write
            with self.cond:
                if self.pending:
                    self._write()


class _ValueError(Exception):
    """A value a procedure passes or returns that cannot be handed over."""


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


class _Converter:
    """Lua values to JSON-able Python, bounded in items and bytes: a 200,000-item table
    fails at item 10,001, it is not walked."""

    def __init__(self) -> None:
        self.items = MAX_VALUE_ITEMS
        self.bytes = MAX_VALUE_BYTES

    def string(self, value: bytes) -> str:
        self.bytes -= len(value)
        if self.bytes < 0:
            raise _ValueError(f"value too large (over {MAX_VALUE_BYTES} bytes of strings)")
        return _text(value)

    def convert(self, value: Any, depth: int = 0) -> Any:
        kind = lua54.lua_type(value)
        if kind is None:
            if isinstance(value, bytes):
                return self.string(value)
            if value is None or isinstance(value, bool | int | float):
                return value
            raise _ValueError(f"cannot hand over a {type(value).__name__}")
        if kind != "table":
            raise _ValueError(f"cannot hand over a {kind}")
        if depth >= 32:
            raise _ValueError("value too deeply nested (over 32 levels)")
        pairs: list[tuple[Any, Any]] = []
        # LuaTable.items() walks with lua_next: raw, no __pairs or __index runs.
        for key, item in value.items():
            self.items -= 1
            if self.items < 0:
                raise _ValueError(f"value too large (over {MAX_VALUE_ITEMS} table items)")
            pairs.append((key, item))
        keys = [k for k, _ in pairs]
        if (
            keys
            and all(isinstance(k, int) and not isinstance(k, bool) for k in keys)
            and sorted(keys) == list(range(1, len(keys) + 1))
        ):
            by_index = dict(pairs)
            return [self.convert(by_index[i], depth + 1) for i in range(1, len(keys) + 1)]
        out: dict[str, Any] = {}
        for key, item in pairs:
            if isinstance(key, bytes):
                name = self.string(key)
            elif isinstance(key, int | float) and not isinstance(key, bool):
                name = str(key)
            else:
                raise _ValueError("table keys must be strings or numbers")
            out[name] = self.convert(item, depth + 1)
        return out


def _deny_attributes(obj: object, name: str, is_setting: bool) -> str:
    raise AttributeError("attribute access is not allowed in procedures")


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise _ValueError(f"{what} must be an integer")
    return int(value)


class Worker:
    """One worker's Lua state and its pipes (``inp``: messages from the server, ``out``: to
    it)."""

    def __init__(self, inp: int, out: int) -> None:
        self.inp = inp
        self.out = _Out(out)
        self.runtime = lua54.LuaRuntime(
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            encoding=None,  # Lua strings are bytes: a run's invalid UTF-8 is not our error
            attribute_filter=_deny_attributes,
            max_memory=0,
        )
        self._run, self._cleanup, setup = self.runtime.execute(_PRELUDE.encode())
        self.actions: list[dict[str, Any]] = []
        self.logs: list[str] = []
        self.reads = 0
        # This batch's host-read answers, by (function, arguments as JSON).
        self.answers: dict[tuple[str, bytes], dict[str, Any]] = {}
        self.answer_bytes = MAX_ANSWER_BYTES
        self.broken: Exception | None = None
        # The host functions are bound to this worker (they write to ``actions`` and
        # ``logs``, reset per run): made once, wrapped once in Lua.
        setup(self._host())
        self._cleanup(True, 0)
        # Past this many bytes of Lua memory the collection after a run is a full one
        # (see the prelude's cleanup): what runs leave is garbage, reclaimed in steps.
        self.grown = self.runtime.get_memory_used() + GROWN_BYTES

    # -- Python values into Lua ------------------------------------------------------------

    def to_lua(self, value: Any) -> Any:
        # Decoded JSON only (str, int, float, bool, None, dict, list): dispatched on the exact
        # type, scalars of a table converted in place (an event's dozen fields are a table of
        # scalars: one call, not one per field).
        kind = type(value)
        if kind is str:
            return value.encode("utf-8")
        if kind is dict:
            return self.runtime.table_from(
                {
                    k.encode("utf-8"): (
                        v.encode("utf-8")
                        if type(v) is str
                        else self.to_lua(v)
                        if type(v) is dict or type(v) is list
                        else v
                    )
                    for k, v in value.items()
                }
            )
        if kind is list:
            return self.runtime.table_from(
                [
                    v.encode("utf-8")
                    if type(v) is str
                    else self.to_lua(v)
                    if type(v) is dict or type(v) is list
                    else v
                    for v in value
                ]
            )
        return value

    # -- the host API, as the Lua closures see it: each returns (ok, value or message) ----

    def _host(self) -> Any:
        functions: dict[bytes, Any] = {}
        for name in READS:
            functions[name.encode()] = self._reader(name)
        functions[b"create_job"] = self._create_job
        functions[b"isolate"] = self._response("isolate", 0)
        functions[b"kill_process"] = self._response("kill_process", 1)
        functions[b"get_file"] = self._response("get_file", 1)
        functions[b"start_hunt"] = self._start_hunt
        functions[b"raise_alert"] = self._raise_alert
        functions[b"audit"] = self._audit
        functions[b"log"] = self._log
        return self.runtime.table_from(functions)

    def _guarded(self, work: Any) -> tuple[bool, Any]:
        # No Python exception may reach Lua (a run could catch it and read it): a refusal
        # is a Lua error with a message; anything else ends the run, and then the worker.
        try:
            return True, work()
        except _ValueError as exc:
            return False, str(exc).encode()
        except Exception as exc:
            self.broken = exc
            return False, b"host unavailable"

    def _reader(self, name: str) -> Any:
        def call(*params: Any) -> tuple[bool, Any]:
            def ask() -> Any:
                self.reads += 1
                if self.reads > MAX_READS:
                    raise _ValueError(f"more than {MAX_READS} host reads in one run")
                args = [_Converter().convert(p) for p in params[:3]]
                key = (name, orjson.dumps(args))
                reply = self.answers.get(key)
                if reply is None:
                    call = {"op": "call", "fn": name, "args": args}
                    self.out.now(protocol.encode(call))
                    reply, size = protocol.read_sized(self.inp)
                    if reply.get("op") != "reply":
                        raise RuntimeError("protocol error: expected a reply")
                    if len(self.answers) < MAX_ANSWERS and size <= self.answer_bytes:
                        self.answers[key] = reply
                        self.answer_bytes -= size
                if not reply.get("ok"):
                    raise _ValueError(str(reply.get("error")))
                if name == "allow_station":
                    self._act("allow_station", args[:1])
                return self.to_lua(reply.get("value"))

            return self._guarded(ask)

        return call

    def _act(self, name: str, args: list[Any]) -> None:
        if len(self.actions) >= MAX_ACTIONS:
            raise _ValueError(f"more than {MAX_ACTIONS} host actions in one run")
        self.actions.append({"fn": name, "args": args})

    def _create_job(
        self, station_id: Any = None, job_type: Any = None, params: Any = None, priority: Any = 1
    ) -> tuple[bool, Any]:
        def act() -> bool:
            _int(station_id, "station id")
            if not isinstance(job_type, bytes):
                raise _ValueError("job type must be a string")
            converted = _Converter().convert(params) if params is not None else {}
            self._act(
                "create_job",
                [
                    _int(station_id, "station id"),
                    _text(job_type)[:64],
                    converted if isinstance(converted, dict) else {},
                    _int(priority, "priority"),
                ],
            )
            return True

        return self._guarded(act)

    def _response(self, name: str, extra: int) -> Any:
        """``isolate(station)``, ``kill_process(station, {pid=…, tree=…})`` (or a pid),
        ``get_file(station, path)``: a job for the station, created after the run."""

        def call(station_id: Any = None, what: Any = None) -> tuple[bool, Any]:
            def act() -> bool:
                args: list[Any] = [_int(station_id, "station id")]
                if extra:
                    converted = _Converter().convert(what)
                    if converted is None:
                        raise _ValueError(f"{name} needs a second argument")
                    args.append(converted)
                self._act(name, args)
                return True

            return self._guarded(act)

        return call

    def _start_hunt(
        self, question: Any = None, target: Any = None, expires_in: Any = 3600
    ) -> tuple[bool, Any]:
        def act() -> bool:
            converter = _Converter()
            asked = converter.convert(question)
            aim = converter.convert(target) if target is not None else {"all": True}
            if not isinstance(asked, dict) or not isinstance(aim, dict):
                raise _ValueError("start_hunt(question, target, expires_in) takes two tables")
            self._act("start_hunt", [asked, aim, _int(expires_in, "expires_in")])
            return True

        return self._guarded(act)

    def _raise_alert(
        self, station_id: Any = None, threat: Any = None, path: Any = b"", action: Any = None
    ) -> tuple[bool, Any]:
        def act() -> bool:
            converter = _Converter()
            self._act(
                "raise_alert",
                [
                    _int(station_id, "station id"),
                    self._shown(converter, threat)[:255],
                    self._shown(converter, path)[:4096],
                    self._shown(converter, action if action is not None else b"procedure")[:64],
                ],
            )
            return True

        return self._guarded(act)

    def _audit(self, action: Any = None, target: Any = b"", detail: Any = b"") -> tuple[bool, Any]:
        def act() -> None:
            converter = _Converter()
            self._act(
                "audit",
                [
                    self._shown(converter, action)[:40],
                    self._shown(converter, target)[:255],
                    self._shown(converter, detail)[:1000],
                ],
            )

        return self._guarded(act)

    def _log(self, message: Any = None) -> tuple[bool, Any]:
        def act() -> None:
            if len(self.logs) < MAX_LOGS:
                self.logs.append(self._shown(_Converter(), message)[:MAX_LOG_CHARS])

        return self._guarded(act)

    @staticmethod
    def _shown(converter: _Converter, value: Any) -> str:
        """What Lua's tostring would show for a plain value (tables: their type only, no
        metamethod runs from Python)."""
        if isinstance(value, bytes):
            return converter.string(value[: MAX_VALUE_BYTES // 4])
        if value is None:
            return "nil"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return str(lua54.lua_type(value) or type(value).__name__)

    # -- a batch of runs, one after another ------------------------------------------------

    def run_batch(self, message: dict[str, Any]) -> None:
        """Run a ``runs`` message's runs in order, each as :meth:`run` does (its own fresh
        environment, budget, memory cap, CPU limit and collection after it), each one's
        ``done`` written within FLUSH_SECONDS of its end (see :class:`_Out`), the last at
        once.  The host-read answers of the batch are remembered for the batch only."""
        procedures = [
            (str(p["name"]).encode("utf-8"), str(p["source"]).encode("utf-8"))
            for p in message["procedures"]
        ]
        instructions, memory = int(message["instructions"]), int(message["memory"])
        cpu = int(message["cpu_seconds"])
        self.answers, self.answer_bytes = {}, MAX_ANSWER_BYTES
        runs = message["runs"]
        try:
            for index, (which, args) in enumerate(runs):
                name, source = procedures[int(which)]
                answer = self.run(name, source, args, instructions, memory, cpu)
                # The batch's last done goes at once (with any still buffered): the server
                # waits for it, and a batch of one is a single run, written as it ends.
                self.send(index, answer, last=index == len(runs) - 1)
        except BaseException:
            # The worker is going down (a Python error of ours): the dones of the runs that
            # ended go first, so that the server blames the run it was on, not an earlier one.
            self.out.now(b"")
            raise
        finally:
            self.answers = {}

    def run(
        self, name: bytes, source: bytes, args: Any, instructions: int, memory: int, cpu: int
    ) -> dict[str, Any]:
        started = time.perf_counter()
        self.actions, self.logs, self.reads = [], [], 0
        cpu_used = resource.getrusage(resource.RUSAGE_SELF)
        spent = int(cpu_used.ru_utime + cpu_used.ru_stime) + 1
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = spent + cpu
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        # The kernel stops a run the deadline somehow misses: SIGXCPU past the budget.
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        self.runtime.set_max_memory(self.runtime.get_memory_used() + memory)
        # Anything that escapes (a Python error of ours) leaves the outcome failed.
        outcome: dict[str, Any] = {"ok": False, "error": "runtime error"}
        try:
            ok, value = self._run(source, name, self.to_lua(args or {}), instructions)
            if ok:
                outcome = {"ok": True, "value": _Converter().convert(value)}
            else:
                error = _text(value) if isinstance(value, bytes) else str(value)
                if error == "not enough memory":
                    error = f"memory limit of {memory} bytes exceeded"
                outcome = {"ok": False, "error": error}
        except lua54.LuaMemoryError:
            outcome = {"ok": False, "error": f"memory limit of {memory} bytes exceeded"}
        except _ValueError as exc:
            outcome = {"ok": False, "error": f"runtime error: {exc}"}
        except lua54.LuaError as exc:
            outcome = {"ok": False, "error": f"runtime error: {_shown_error(exc)}"}
        finally:
            self.runtime.set_max_memory(0)
            if self._cleanup(not outcome["ok"], self.grown):
                self.grown = self.runtime.get_memory_used() + GROWN_BYTES
        if self.broken is not None:
            raise self.broken
        return {
            "op": "done",
            **outcome,
            "actions": self.actions if outcome["ok"] else [],
            "logs": self.logs,
            "elapsed": time.perf_counter() - started,
        }

    def send(self, index: int, answer: dict[str, Any], last: bool = True) -> None:
        answer["index"] = index
        try:
            data = protocol.encode(answer)
        except protocol.MessageTooLargeError:
            data = protocol.encode(
                {
                    "op": "done",
                    "index": index,
                    "ok": False,
                    "error": "result too large to hand over",
                    "actions": [],
                    "logs": [],
                    "elapsed": answer.get("elapsed", 0.0),
                }
            )
        if last:
            self.out.now(data)
        else:
            self.out.soon(data)

    def serve(self) -> None:
        self.out.now(protocol.encode({"op": "ready", "pid": os.getpid()}))
        while True:
            try:
                message = protocol.read(self.inp)
            except EOFError:
                return  # the server is gone, or done with this worker
            if message.get("op") != "runs":
                raise RuntimeError(f"protocol error: unexpected {message.get('op')!r}")
            self.run_batch(message)


def _shown_error(exc: Exception) -> str:
    text = str(exc)
    return text[2:-1] if text.startswith("b'") else text


def _limit_memory(extra: int) -> None:
    """RLIMIT_AS: what the worker maps at rest plus ``extra`` (a backstop under the Lua
    allocator's own cap, for what Python does around it)."""
    try:
        with open("/proc/self/status") as status:
            rest = next(
                int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:")
            )
    except (OSError, StopIteration, ValueError):
        return  # not Linux: the Lua allocator's cap alone
    resource.setrlimit(resource.RLIMIT_AS, (rest + extra, rest + extra))


def main() -> None:
    parser = argparse.ArgumentParser(description="a Garrison procedure worker")
    parser.add_argument("--memory-limit", type=int, default=256 * 1024 * 1024)
    options = parser.parse_args()
    # The server stops its workers; a terminal's Ctrl-C is for the server.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # The protocol owns stdin and stdout: anything else printing goes to stderr.
    inp, out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = Worker(inp, out)
    _limit_memory(options.memory_limit)
    worker.serve()


if __name__ == "__main__":
    main()
