"""Lua procedure cost per event: ``garrison.server.procedures.sandbox.run`` with a realistic
``threat_detected`` procedure, beside the empty call (``return nil`` through the same
sandbox: a fresh Lua state, the prelude, the budget hook) — the floor of any procedure.
A second line shows what the sandbox itself costs: the empty sandboxed call beside a bare
lupa call of an empty function in a state that already exists.

    python -m bench.lua [--size tiny|full]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from garrison.common.catalogue import CATALOGUE, validate
from garrison.server.procedures.sandbox import Limits
from garrison.server.procedures.sandbox import run as sandbox_run

SIZES: dict[str, dict[str, Any]] = {"tiny": {"calls": 200}, "full": {"calls": 5000}}

EMPTY = "return nil"

# What an administrator writes for threat_detected: quiet the test signature, escalate
# executables and threats on servers (a host call, table walking, string matching).
REALISTIC = r"""
local args = ...
if args.virus == nil then return nil end
local name = string.lower(args.virus)
if string.find(name, "eicar", 1, true) then
  garrison.log("test signature on " .. tostring(args.station) .. ": " .. tostring(args.object))
  return nil
end
local critical = false
local st = garrison.station(args.id)
if st ~= nil then
  for _, g in ipairs(st.groups) do
    if g == "servers" or g == "domain-controllers" then critical = true end
  end
end
local path = args.object or ""
local ext = string.lower(string.match(path, "%.(%w+)$") or "")
if critical or ext == "exe" or ext == "dll" or ext == "scr" then
  garrison.audit("escalate", tostring(args.id), args.virus .. " at " .. path)
  garrison.log(string.format("escalated %s on %s", args.virus, tostring(args.station)))
end
return nil
"""


def event_args() -> dict[str, Any]:
    return validate(
        CATALOGUE["threat_detected"],
        {
            "id": 42,
            "station": "ws-042",
            "address": "10.1.2.42",
            "time": "2026-11-20T10:00:00Z",
            "object": r"C:\Users\alice\Downloads\invoice.exe",
            "virus": "Win.Trojan.Agent-123",
            "action": "quarantine",
            "objecttype": 0,
            "infectiontype": "trojan",
            "user": "alice",
            "component": 2,
            "pid": 4242,
        },
    )


def host() -> dict[str, Callable[..., Any]]:
    station = {
        "id": 42,
        "uuid": "4C4C4544-0033-4A10-8051-B5C04F4E4E31",
        "hostname": "ws-042",
        "address": "10.1.2.42",
        "os": "windows",
        "groups": ["workstations", "finance"],
        "connected": True,
    }
    return {
        "station": lambda sid: station,
        "log": lambda message: None,
        "audit": lambda action, target="", detail="": None,
    }


def per_call(source: str, calls: int) -> float:
    args, functions, limits = event_args(), host(), Limits()
    sandbox_run(source, "threat_detected", args, functions, limits)  # warm imports and caches
    started = time.perf_counter()
    for _ in range(calls):
        sandbox_run(source, "threat_detected", args, functions, limits)
    return (time.perf_counter() - started) / calls


def bare_call(calls: int) -> float:
    from lupa import lua54

    runtime = lua54.LuaRuntime(register_eval=False, register_builtins=False)
    fn = runtime.eval("function(args) return nil end")
    args = runtime.table_from(event_args())
    started = time.perf_counter()
    for _ in range(calls):
        fn(args)
    return (time.perf_counter() - started) / calls


def run(size: str) -> dict[str, Any]:
    calls = SIZES[size]["calls"]
    empty = per_call(EMPTY, calls)
    realistic = per_call(REALISTIC, calls)
    bare = bare_call(calls * 10)
    return {
        "scenario": "lua",
        "title": "Lua procedure cost per event (threat_detected)",
        "figures": [
            fig_rate("realistic procedure", realistic, empty, "empty sandboxed call"),
            fig_rate("empty sandboxed call", empty, bare, "bare lupa call"),
        ],
        "targets": [],
        "details": {
            "calls": calls,
            "realistic_us_per_event": round(realistic * 1e6, 1),
            "empty_us_per_event": round(empty * 1e6, 1),
            "bare_lupa_us_per_call": round(bare * 1e6, 3),
        },
        "notes": [
            "Host functions are in-memory stubs: the figure is the sandbox and the Lua work, "
            "not the database reads a real garrison.station() does.",
        ],
    }


def fig_rate(name: str, seconds: float, floor_seconds: float, floor_name: str) -> dict[str, Any]:
    from bench.common import fig

    return fig(
        f"{name} (calls/s)", 1 / seconds, "calls/s", floor=1 / floor_seconds, floor_name=floor_name
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Lua procedure cost per event")
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    args = parser.parse_args()
    print(json.dumps(run(args.size), indent=2))


if __name__ == "__main__":
    main()
