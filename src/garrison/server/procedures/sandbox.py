"""Running one administrator-written Lua procedure, sandboxed.

Each call gets a fresh Lua 5.4 state (nothing leaks from one call to the next) with:
- only safe globals: no ``io``, ``os.execute``, ``require``, ``load``/``dofile``, ``debug``,
  ``collectgarbage``, ``string.dump``; source is compiled in text mode only (no bytecode);
- no access to Python attributes of the host functions it is given;
- a CPU budget (a count hook, which ``pcall`` cannot swallow) and a wall-clock limit;
- a memory cap enforced by the Lua allocator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lupa import lua54

if TYPE_CHECKING:
    from garrison.server.settings import Settings

DEFAULT_INSTRUCTIONS = 5_000_000
DEFAULT_MEMORY = 16 * 1024 * 1024
DEFAULT_SECONDS = 2.0
HOOK_EVERY = 1000

_PRELUDE = r"""
local budget_error = setmetatable({}, {__tostring = function() return "cpu budget exceeded" end})
local raw_pcall, raw_xpcall, raw_error = pcall, xpcall, error
local sethook, clock, load = debug.sethook, os.clock, load
string.dump = nil

-- Once the budget is spent it stays spent: no pcall, xpcall handler or __close can
-- swallow it.
local exhausted = false
local function rethrow_budget(ok, ...)
  if exhausted or (not ok and select(1, ...) == budget_error) then
    exhausted = true
    raw_error(budget_error, 0)
  end
  return ok, ...
end
local function guarded_handler(h)
  return function(e)
    if exhausted or e == budget_error then return budget_error end
    return h(e)
  end
end

-- Lua patterns run inside C, where no budget can stop them: refuse the backtracking-heavy
-- ones on long subjects.
local MAX_QUANTIFIERS = 3
local function quantifiers(p)
  local n, i = 0, 1
  while i <= #p do
    local c = p:sub(i, i)
    if c == "%" then i = i + 1
    elseif c == "*" or c == "-" or c == "+" then n = n + 1 end
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

local env = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
  select = select, tonumber = tonumber, tostring = tostring, type = type,
  rawequal = rawequal, rawget = rawget, rawlen = rawlen, rawset = rawset,
  setmetatable = setmetatable, getmetatable = getmetatable,
  pcall = function(f, ...) return rethrow_budget(raw_pcall(f, ...)) end,
  xpcall = function(f, h, ...) return rethrow_budget(raw_xpcall(f, guarded_handler(h), ...)) end,
  string = string, table = table, math = math, utf8 = utf8,
  os = {time = os.time, date = os.date, clock = os.clock, difftime = os.difftime},
}
env._G = env

return function(source, name, args, host, instructions, seconds)
  local chunk, err = load(source, "=" .. name, "t", env)
  if not chunk then return false, "syntax error: " .. tostring(err) end
  env.garrison = host
  local used, deadline = 0, clock() + seconds
  sethook(function()
    used = used + HOOK_EVERY
    if exhausted or used > instructions or clock() > deadline then
      exhausted = true
      raw_error(budget_error, 0)
    end
  end, "", HOOK_EVERY)
  local result = table.pack(raw_pcall(chunk, args))
  sethook()
  if not result[1] then
    local e = result[2]
    if exhausted or e == budget_error then return false, "cpu budget exceeded" end
    return false, "runtime error: " .. tostring(e)
  end
  if exhausted then return false, "cpu budget exceeded" end
  return true, result[2]
end
""".replace("HOOK_EVERY", str(HOOK_EVERY))


class ProcedureFailedError(Exception):
    """The procedure raised, timed out, used too much memory or returned a wrong type."""


@dataclass(frozen=True)
class Limits:
    instructions: int = DEFAULT_INSTRUCTIONS
    memory_bytes: int = DEFAULT_MEMORY
    seconds: float = DEFAULT_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.procedure_instructions,
            settings.procedure_memory_bytes,
            settings.procedure_seconds,
        )


@dataclass(frozen=True)
class Outcome:
    value: Any
    elapsed: float


def _deny_attributes(obj: object, name: str, is_setting: bool) -> str:
    raise AttributeError("attribute access is not allowed in procedures")


def _to_python(value: Any) -> Any:
    if lua54.lua_type(value) == "table":
        items = dict(value.items())
        if (
            items
            and all(isinstance(k, int) for k in items)
            and sorted(items) == list(range(1, len(items) + 1))
        ):
            return [_to_python(items[i]) for i in range(1, len(items) + 1)]
        return {str(k): _to_python(v) for k, v in items.items()}
    return value


def check_syntax(source: str, name: str) -> str | None:
    """The syntax error in ``source``, or None; compiles without running anything."""
    runtime = lua54.LuaRuntime(
        register_eval=False,
        register_builtins=False,
        attribute_filter=_deny_attributes,
        max_memory=DEFAULT_MEMORY,
    )
    compile_only = runtime.eval(
        "function(s, n) local f, e = load(s, '=' .. n, 't', {}) return e end"
    )
    try:
        error = compile_only(source, name)
    except lua54.LuaError as exc:
        return f"syntax error: {exc}"
    return f"syntax error: {error}" if error else None


def run(
    source: str,
    name: str,
    args: Mapping[str, Any],
    host: Mapping[str, Callable[..., Any]],
    limits: Limits = Limits(),
) -> Outcome:
    """Run ``source`` with ``local args = ...``; ``host`` becomes the ``garrison`` table.

    Host functions receive Lua tables converted to Python, and their results are converted
    to Lua tables.
    """
    started = time.perf_counter()
    runtime = lua54.LuaRuntime(
        register_eval=False,
        register_builtins=False,
        unpack_returned_tuples=True,
        attribute_filter=_deny_attributes,
        max_memory=limits.memory_bytes,
    )

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*params: Any) -> Any:
            result = fn(*[_to_python(p) for p in params])
            if isinstance(result, dict | list):
                return runtime.table_from(result, recursive=True)
            return result

        return call

    try:
        runner = runtime.execute(_PRELUDE)
        host_table = runtime.table_from({k: wrap(v) for k, v in host.items()})
        ok, value = runner(
            source,
            name,
            runtime.table_from(dict(args)),
            host_table,
            limits.instructions,
            limits.seconds,
        )
    except lua54.LuaMemoryError:
        raise ProcedureFailedError(
            f"memory limit of {limits.memory_bytes} bytes exceeded"
        ) from None
    except lua54.LuaError as exc:
        raise ProcedureFailedError(f"runtime error: {exc}") from None
    if not ok:
        if "not enough memory" in str(value):
            raise ProcedureFailedError(f"memory limit of {limits.memory_bytes} bytes exceeded")
        raise ProcedureFailedError(str(value))
    return Outcome(value=_to_python(value), elapsed=time.perf_counter() - started)
