"""What every procedure run is bounded by, what its input is cut to, and the syntax check.

Procedures never run in the server's process: a worker process runs them
(:mod:`garrison.server.procedures.worker`, managed by
:mod:`garrison.server.procedures.workers`), because some of what Lua can do (a ``__gc``
finalizer, a backtracking pattern inside C) is beyond any in-process budget.  This module
holds what both sides share and the one thing the server does with Lua source itself:
compile it to check its syntax.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lupa import lua54

if TYPE_CHECKING:
    from garrison.server.settings import Settings

DEFAULT_INSTRUCTIONS = 5_000_000
DEFAULT_MEMORY = 16 * 1024 * 1024
DEFAULT_SECONDS = 2.0

# Every string a procedure is given (event fields, host names, what the host API answers) is
# cut to this many characters before it reaches Lua: a pattern's cost grows with its
# subject, and no event field needs more to be judged.
MAX_ARG_STRING = 4096
# Tables a procedure is given: at most this deep, and this many items in all.
MAX_ARG_DEPTH = 8
MAX_ARG_ITEMS = 2000


class ProcedureFailedError(Exception):
    """The procedure raised, ran out of budget (instructions, memory, time), or returned
    what its caller cannot use.  Recorded with its event; the default applies."""


class ProcedureUnavailableError(Exception):
    """The procedure could not be run at all (every worker busy past the wait, or the
    server stopping): not the procedure's fault, so not counted against it."""


@dataclass(frozen=True)
class Limits:
    instructions: int = DEFAULT_INSTRUCTIONS
    memory_bytes: int = DEFAULT_MEMORY
    # The wall-clock deadline of one run, host calls included, enforced from outside the
    # worker: past it the worker is killed.
    seconds: float = DEFAULT_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.procedure_instructions,
            settings.procedure_memory_bytes,
            settings.procedure_seconds,
        )

    @property
    def cpu_seconds(self) -> int:
        """The CPU time a worker may spend on one run before the kernel stops it (SIGXCPU):
        the wall-clock budget rounded up, plus a second (the limit counts whole seconds)."""
        return math.ceil(self.seconds) + 1


def cap_args(value: Any) -> Any:
    """``value`` with every string cut to :data:`MAX_ARG_STRING` characters, tables cut to
    :data:`MAX_ARG_DEPTH` levels and :data:`MAX_ARG_ITEMS` items in all (the rest dropped),
    and anything JSON cannot carry made a string."""
    if type(value) is dict and _flat_within_caps(value):
        return dict(value)
    budget = [MAX_ARG_ITEMS]
    return _cap(value, 0, budget)


_SCALARS = (bool, float, type(None))


def _flat_within_caps(value: dict[Any, Any]) -> bool:
    """Whether ``value`` is a table of scalars that the caps leave as it is (an event's
    fields, almost always): then a copy is its capped value, without the walk."""
    if len(value) > MAX_ARG_ITEMS:
        return False
    for key, item in value.items():
        if type(key) is not str or len(key) > MAX_ARG_STRING:
            return False
        kind = type(item)
        if kind is str:
            if len(item) > MAX_ARG_STRING:
                return False
        elif kind is int:
            if abs(item) >= 1 << 63:
                return False
        elif kind not in _SCALARS:
            return False
    return True


def _cap(value: Any, depth: int, budget: list[int]) -> Any:
    if value is None or isinstance(value, bool | int | float):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1 << 63:
            return float(value)  # Lua integers are 64-bit
        return value
    if isinstance(value, str):
        return value[:MAX_ARG_STRING]
    if isinstance(value, Mapping):
        if depth >= MAX_ARG_DEPTH:
            return None
        out: dict[str, Any] = {}
        for key, item in value.items():
            if budget[0] <= 0:
                break
            budget[0] -= 1
            out[str(key)[:MAX_ARG_STRING]] = _cap(item, depth + 1, budget)
        return out
    if isinstance(value, list | tuple):
        if depth >= MAX_ARG_DEPTH:
            return None
        items: list[Any] = []
        for item in value:
            if budget[0] <= 0:
                break
            budget[0] -= 1
            items.append(_cap(item, depth + 1, budget))
        return items
    return str(value)[:MAX_ARG_STRING]


def _deny_attributes(obj: object, name: str, is_setting: bool) -> str:
    raise AttributeError("attribute access is not allowed in procedures")


def check_syntax(source: str, name: str) -> str | None:
    """The syntax error in ``source``, or None; compiles without running anything.

    This runs in the server's process, and cannot hang it: compiling runs no procedure code
    (no metamethod, no finalizer: the chunk is never called), Lua's compiler is one pass,
    linear in the source (which is at most 256 KiB, see ``service.MAX_SOURCE``), nesting is
    bounded by the C-stack limit (200 levels), and memory by the state's cap."""
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
