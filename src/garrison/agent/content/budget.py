"""YARA rules that compile can still be unusable: slow to compile, too large in memory, or so
slow to match that every file hits the scan timeout.  Before new rules are loaded into the
agent, a child process (``python -m garrison.agent.content.budget``) compiles them under an
address-space limit, with includes off (a rule must not read the agent's files), and matches
them against a probe corpus (zeros, random bytes, text: 1 MiB each); the parent kills it past
the time budget.  Rules that exceed a budget are refused with the figure that broke it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.agent.content.errors import ContentRefused

PROBE_SIZE = 1 << 20
STARTUP_ALLOWANCE = 15.0  # seconds for the child's own start, on a loaded machine


@dataclass(frozen=True)
class Budget:
    compile_seconds: float = 30.0
    scan_seconds: float = 5.0  # for the whole corpus (3 MiB): a rule far slower is unusable
    memory_bytes: int = 1 << 30  # the child's address space, Python and YARA included


DEFAULT = Budget()


def _corpus() -> list[bytes]:
    text = (b"The quick brown fox jumps over the lazy dog 0123456789.\n" * 20000)[:PROBE_SIZE]
    return [bytes(PROBE_SIZE), os.urandom(PROBE_SIZE), text]


def check(paths: list[Path], budget: Budget = DEFAULT) -> dict[str, Any]:
    """The rules' figures (``rules``, ``compile_seconds``, ``scan_seconds``) when they keep
    within the budget; ContentRefused naming the budget exceeded otherwise."""
    if not paths:
        return {"rules": 0, "compile_seconds": 0.0, "scan_seconds": 0.0}
    request = {
        "paths": [str(p) for p in paths],
        "memory_bytes": budget.memory_bytes,
        "scan_seconds": budget.scan_seconds,
    }
    limit = budget.compile_seconds + budget.scan_seconds + STARTUP_ALLOWANCE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "garrison.agent.content.budget"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ContentRefused(
            f"the YARA rules exceed the time budget: not compiled and tried within {limit:.0f} s"
        ) from None
    except OSError as exc:
        raise ContentRefused(f"the YARA rules could not be tried: {exc}") from None
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = None
    if not isinstance(result, dict):
        tail = (done.stderr or "").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        if "MemoryError" in tail[0] or done.returncode < 0:
            raise ContentRefused(
                f"the YARA rules exceed the memory budget ({budget.memory_bytes >> 20} MiB)"
            )
        raise ContentRefused(f"the YARA rules could not be tried: {tail[0][:300]}")
    if result.get("error"):
        raise ContentRefused(str(result["error"]))
    if float(result.get("compile_seconds", 0)) > budget.compile_seconds:
        raise ContentRefused(
            f"the YARA rules exceed the time budget: compiling took "
            f"{result['compile_seconds']:.1f} s (budget {budget.compile_seconds:g} s)"
        )
    return result


# -- the child -------------------------------------------------------------------------------


def _child(request: dict[str, Any]) -> dict[str, Any]:
    import resource

    memory = int(request["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    try:
        import yara  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        if "map" in str(exc) or "memory" in str(exc).lower():
            return {"error": f"the YARA rules exceed the memory budget ({memory >> 20} MiB)"}
        return {"rules": 0, "compile_seconds": 0.0, "scan_seconds": 0.0, "skipped": str(exc)}

    paths = [str(p) for p in request["paths"]]
    start = time.monotonic()
    try:
        rules = yara.compile(filepaths={f"ns{i}": p for i, p in enumerate(paths)}, includes=False)
    except MemoryError:
        return {"error": f"the YARA rules exceed the memory budget ({memory >> 20} MiB)"}
    except yara.Error as exc:
        text = str(exc)
        if "memory" in text.lower():
            return {"error": f"the YARA rules exceed the memory budget ({memory >> 20} MiB)"}
        return {"error": f"the YARA rules do not compile: {text}"}
    compiled = time.monotonic() - start
    budget = float(request["scan_seconds"])
    start = time.monotonic()
    try:
        for data in _corpus():
            left = budget - (time.monotonic() - start)
            if left <= 0:
                raise yara.TimeoutError("budget spent")
            rules.match(data=data, timeout=max(1, int(left + 0.999)))
    except yara.TimeoutError:
        return {
            "error": f"the YARA rules exceed the scan time budget: matching "
            f"{3 * PROBE_SIZE >> 20} MiB took more than {budget:g} s"
        }
    except MemoryError:
        return {"error": f"the YARA rules exceed the memory budget ({memory >> 20} MiB)"}
    except yara.Error as exc:
        return {"error": f"the YARA rules fail when matching: {exc}"}
    scanned = time.monotonic() - start
    if scanned > budget:
        return {
            "error": f"the YARA rules exceed the scan time budget: matching "
            f"{3 * PROBE_SIZE >> 20} MiB took {scanned:.1f} s (budget {budget:g} s)"
        }
    return {
        "rules": sum(1 for _ in rules),
        "compile_seconds": round(compiled, 3),
        "scan_seconds": round(scanned, 3),
    }


def main() -> None:
    request = json.loads(sys.stdin.read())
    try:
        result = _child(request)
    except MemoryError:
        result = {"error": "the YARA rules exceed the memory budget"}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
