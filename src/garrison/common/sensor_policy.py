"""The sensor policy an administrator sets on the server and a Garrison agent applies.

One copy of its rules, shared by both ends: the server refuses a policy that breaks them
(422, naming the key), and the agent checks what it receives again before applying it
(a policy written around the server's checks, or by a newer server, is refused with its
reason and the previous policy stays).

A policy is a partial table: each key it sets overrides the agent's ``[sensors]`` value of the
same name (agent.toml), keys it does not set keep the agent's.  Only keys that mean the same
on every host are here: local paths to binaries and files (``os_log_journalctl``,
``os_log_path``, ``utmp_path``), the netlink buffer and the spool share stay local, so a
server can never make an agent run a program of its choosing.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

MAX_LIST = 1000
MAX_TEXT = 4096
HASH = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{64})$")


class PolicyError(ValueError):
    """A policy value that breaks the rules; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class Rule:
    kind: str  # bool | int | float | paths | globs | hashes
    low: float = 0
    high: float = 0
    doc: str = ""


SWITCH = Rule("bool", doc="on or off")
RULES: dict[str, Rule] = {
    # Which sensors run ("enabled" turns them all off).
    "enabled": Rule("bool", doc="all sensors on or off"),
    "process": SWITCH,
    "file": SWITCH,
    "driver": SWITCH,
    "module": SWITCH,
    "ports": SWITCH,
    "os_log": SWITCH,
    "terminal": SWITCH,
    # Rate limits: a token bucket per sensor.
    "rate_per_second": Rule("int", 1, 1_000_000, "events per second per sensor"),
    "burst": Rule("int", 1, 10_000_000, "events a sensor may send at once above its rate"),
    # The redaction list: environment variable names (globs) whose values are hidden.
    "redact": Rule("globs", doc="environment variable names (globs) whose values are hidden"),
    # Watched paths and exclusions.
    "file_paths": Rule("paths", doc="absolute trees where file_created is reported"),
    "file_exclude": Rule("globs", doc="paths (prefixes or globs) never reported"),
    "exclude_processes": Rule(
        "globs", doc="process file names or paths (globs) whose events are not sent"
    ),
    "exclude_hashes": Rule("hashes", doc="MD5 or SHA-256 of files whose events are not sent"),
    # Timings.
    "file_hash_wait": Rule("float", 0, 3600, "seconds a created file may stay open"),
    "health_interval": Rule("float", 1, 86400, "seconds between two sensor_health events"),
    "driver_interval": Rule("float", 0.1, 3600, "seconds between two /proc/modules reads"),
    "port_interval": Rule("float", 0.1, 3600, "seconds between two listening-socket sweeps"),
    "module_dedupe": Rule("int", 0, 10_000_000, "(image, library hash) pairs remembered"),
}
KEYS = tuple(RULES)


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _number(key: str, rule: Rule, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(key, f"must be a number, not {type(value).__name__}")
    if rule.kind == "int" and not isinstance(value, int):
        if not (isinstance(value, float) and value.is_integer()):
            raise PolicyError(key, "must be an integer")
        value = int(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise PolicyError(key, "must be a finite number")
    if not rule.low <= value <= rule.high:
        raise PolicyError(key, f"must be between {_plain(rule.low)} and {_plain(rule.high)}")
    return value if rule.kind == "int" else float(value)


def _strings(key: str, rule: Rule, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise PolicyError(key, f"must be a list of strings, not {type(value).__name__}")
    if len(value) > MAX_LIST:
        raise PolicyError(key, f"at most {MAX_LIST} items")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise PolicyError(key, f"items must be strings, not {type(item).__name__}")
        if not 1 <= len(item) <= MAX_TEXT or "\x00" in item:
            raise PolicyError(key, f"items must be 1-{MAX_TEXT} characters, without NUL")
        if rule.kind == "paths" and not item.startswith("/"):
            raise PolicyError(key, f"{item!r} is not an absolute path")
        if rule.kind == "hashes":
            item = item.lower()
            if not HASH.match(item):
                raise PolicyError(key, f"{item!r} is not an MD5 or SHA-256 in hex")
        if item not in out:
            out.append(item)
    return out


def validate(policy: Any) -> dict[str, Any]:
    """The policy, checked and normalised (hashes lower-cased, duplicates dropped); raises
    :class:`PolicyError` naming the first key that is wrong."""
    if not isinstance(policy, dict):
        raise PolicyError("policy", "must be an object of key = value")
    out: dict[str, Any] = {}
    for key, value in policy.items():
        rule = RULES.get(key) if isinstance(key, str) else None
        if rule is None:
            raise PolicyError(str(key), f"unknown key; keys: {', '.join(KEYS)}")
        if rule.kind == "bool":
            if not isinstance(value, bool):
                raise PolicyError(key, f"must be true or false, not {type(value).__name__}")
            out[key] = value
        elif rule.kind in ("int", "float"):
            out[key] = _number(key, rule, value)
        else:
            out[key] = _strings(key, rule, value)
    return {key: out[key] for key in KEYS if key in out}


def version(policy: dict[str, Any]) -> str:
    """A short digest of the policy's canonical JSON: its ETag, equal for equal policies."""
    text = json.dumps(policy, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
