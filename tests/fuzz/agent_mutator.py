"""A bounded, seeded mutator of agent API requests (issue 22, item 15).

It starts from the real Armadito agent's bodies (``tests.interop.armadito``) and Garrison's
event batches, and changes one or a few things in each: a value's type, a string made of NUL,
U+2028, lone surrogates or 70,000 characters, a number huge, negative or fractional, a value
nested 300 levels deep, a field dropped or added, the identity fields of Garrison agents, the
bytes themselves (cut, invalid UTF-8), the ``Content-Encoding`` (gzip whole, in two members,
cut at a flush point, with garbage after it, deflate).  The same seed makes the same requests.
"""

from __future__ import annotations

import copy
import gzip
import json
import random
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.interop import armadito

# Values swapped in for any value of a seed body.
STRINGS: tuple[str, ...] = (
    "",
    "\u0000",
    "a\u0000b",
    "\u2028\u2029\u0085",
    "\u00e9t\u00e9 \u6f22\u5b57 \U0001f600",
    "x" * 70_000,
    "y" * 300,
    "z" * 65,
    " ",
    "1e309",
    "NaN",
    "-1",
    "9" * 40,
    "not-a-mac",
    "00:11:22:33:44:55",
    "0" * 64,
    "g" * 64,
    "PT1.5H30M0S",
    "PT" + "9" * 30 + "H",
    "'; DROP TABLE stations; --",
    "../../etc/passwd",
    "%s%n%x",
)
NUMBERS: tuple[Any, ...] = (
    0,
    -1,
    1,
    2**31,
    -(2**31) - 1,
    2**63,
    -(2**63) - 1,
    10**30,
    0.5,
    -0.0,
    1e308,
    -1e308,
    True,
    False,
)
CONTAINERS: tuple[Any, ...] = ({}, [], [[]], [1, 2], {"a": {"b": []}}, [None], None)


def deep(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(levels):
        value = {"a": value} if i % 2 else [value]
    return value


@dataclass
class Request:
    """One request of the run: what an agent would send."""

    endpoint: str
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    what: str = ""  # the mutations applied, for the report of a 5xx

    def describe(self) -> str:
        body = self.body[:160].decode("utf-8", "replace")
        return f"{self.method} {self.path} [{self.endpoint}: {self.what}] {body!r}"


@dataclass
class Targets:
    """What a run sends for: a Garrison agent's credential and identity, job ids that are
    its own, and an enrollment key with uses to spare."""

    token: str
    uuid: str
    agent_id: int
    job_ids: list[int]
    key: str


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a JSON value, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    parent = _get(value, path[:-1])
    parent[path[-1]] = new
    return value


class Mutator:
    def __init__(self, seed: int, targets: Targets) -> None:
        self.rng = random.Random(seed)
        self.t = targets

    # -- seeds --------------------------------------------------------------------------

    def _envelope(self, task: str, obj: str, uuid: str | None = None) -> Any:
        text = armadito.envelope(
            task, obj, uuid=uuid or self.t.uuid, agent_id=self.rng.choice([self.t.agent_id, 0])
        )
        return json.loads(text)

    def _new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128))).upper()

    def _job(self) -> int:
        return self.rng.choice(self.t.job_ids)

    def seeds(self) -> dict[str, Callable[[], tuple[str, str, Any]]]:
        """endpoint -> a maker of (method, path, JSON body) of a valid request."""
        job = self._job
        return {
            "Enrollment": lambda: (
                "POST",
                "/api/agents",
                self._envelope("Enrollment", armadito.with_key(self.t.key), uuid=self._new_uuid()),
            ),
            "Getjobs": lambda: ("GET", armadito.GETJOBS_PATH, None),
            "Runjobs": lambda: (
                "POST",
                "/api/jobs",
                self._envelope(
                    "Runjobs",
                    self.rng.choice(
                        [
                            armadito.with_job(armadito.RUNJOBS_SUCCESS, job()),
                            armadito.failure(job(), "scan failed: disk error"),
                        ]
                    ),
                ),
            ),
            "Scan": lambda: (
                "POST",
                "/api/scans",
                self._envelope("Scan", armadito.with_job(armadito.SCAN, job())),
            ),
            "Alerts": lambda: (
                "POST",
                "/api/alerts",
                self._envelope(
                    "Alerts",
                    self.rng.choice(
                        [armadito.with_job(armadito.ALERTS, job()), armadito.ALERTS_STANDALONE]
                    ),
                ),
            ),
            "State": lambda: ("POST", "/api/states", self._envelope("State", armadito.STATE)),
            "AVConfig": lambda: (
                "POST",
                "/api/avconfigs",
                self._envelope("AVConfig", armadito.AVCONFIG),
            ),
            "Scheduler": lambda: (
                "POST",
                "/api/schedulers",
                self._envelope("Scheduler", armadito.SCHEDULER),
            ),
            "Events": lambda: ("POST", "/api/events", self._events()),
        }

    def _events(self) -> Any:
        n = self.rng.randint(1, 4)
        return [
            {
                "id": f"fz{self.rng.randrange(10**9)}",
                "type": "process_started",
                "time": 1700000000,
                "data": {
                    "time": 1700000000,
                    "unique_pid": f"u{i}",
                    "pid": i,
                    "file_path": "/usr/bin/nc",
                    "md5": "0123456789abcdef0123456789abcdef",
                },
            }
            for i in range(n)
        ]

    # -- mutations ----------------------------------------------------------------------

    def _value(self) -> Any:
        """A fresh value (never one of the shared constants: the body is mutated later)."""
        return copy.deepcopy(self._pick())

    def _pick(self) -> Any:
        kind = self.rng.randrange(5)
        if kind == 0:
            return self.rng.choice(STRINGS)
        if kind == 1:
            return self.rng.choice(NUMBERS)
        if kind == 2:
            return self.rng.choice(CONTAINERS)
        if kind == 3:
            return deep(self.rng.choice([60, 70, 254, 300]), self.rng.choice(STRINGS[:5]))
        return [self.rng.choice(STRINGS + NUMBERS)]  # the array-wrapped scalar quirk

    def _mutate_json(self, body: Any) -> tuple[Any, str]:
        path = self.rng.choice(_paths(body))
        target = _get(body, path)
        op = self.rng.randrange(6)
        where = ".".join(str(p) for p in path) or "<root>"
        if op == 0 and isinstance(target, dict) and target:
            key = self.rng.choice(sorted(target))
            del target[key]
            return body, f"drop {where}.{key}"
        if op == 1 and isinstance(target, dict):
            name = self.rng.choice(["extra", "hostname", "mac", "platform", "info", "sha256"])
            target[name] = self._value()
            return body, f"add {where}.{name}"
        if op == 2 and isinstance(target, list) and target:
            count = self.rng.choice([2, 50, 1001])
            target.extend(copy.deepcopy(target[0]) for _ in range(count))
            return body, f"repeat {where} x{count}"
        new = self._value()
        return _set(body, path, new), f"set {where}={json.dumps(new)[:40]}"

    def _identity(self, body: Any) -> str:
        """Garrison's top-level identity fields, with hostile values."""
        names = self.rng.sample(["hostname", "mac", "platform"], self.rng.randint(1, 3))
        for name in names:
            body[name] = self._value()
        return "identity " + ",".join(names)

    def _encode(self, body: Any) -> bytes:
        try:
            return json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")
        except (RecursionError, ValueError):
            return b'{"not": "encodable"}'

    def _bytes(self, raw: bytes) -> tuple[bytes, str]:
        op = self.rng.randrange(5)
        if op == 0:
            cut = self.rng.randrange(len(raw) + 1)
            return raw[:cut], f"cut at {cut}"
        if op == 1:
            return raw.replace(b'"', b'"\xff', 1), "invalid UTF-8"
        if op == 2:
            return raw.replace(b'"', b'"\\ud800', 1), "lone surrogate"
        if op == 3:
            return raw + b"\n" + raw, "two documents"
        return b"\xef\xbb\xbf" + raw, "BOM"

    def _compress(self, raw: bytes) -> tuple[bytes, str, str]:
        """(body, Content-Encoding, what)."""
        op = self.rng.randrange(7)
        if op == 0:
            return gzip.compress(raw), "gzip", "gzip"
        if op == 1:
            return gzip.compress(raw) + gzip.compress(raw), "gzip", "gzip two members"
        if op == 2:
            c = zlib.compressobj(wbits=31)
            return c.compress(raw) + c.flush(zlib.Z_SYNC_FLUSH), "gzip", "gzip cut at flush"
        if op == 3:
            return gzip.compress(raw) + b"junk", "gzip", "gzip trailing junk"
        if op == 4:
            whole = bytearray(gzip.compress(raw))
            whole[-6] ^= 0xFF  # the CRC
            return bytes(whole), "x-gzip", "gzip bad CRC"
        if op == 5:
            return zlib.compress(raw), "deflate", "deflate"
        return raw, self.rng.choice(["identity", "gzip, gzip", "br", "GZIP"]), "odd encoding"

    def request(self) -> Request:
        seeds = self.seeds()
        endpoint = self.rng.choice(sorted(seeds))
        method, path, body = seeds[endpoint]()
        headers = {"Content-Type": "application/json"}
        if endpoint != "Enrollment" or self.rng.random() < 0.2:
            headers["Authorization"] = f"Bearer {self.t.token}"
        if method == "GET":
            return self._getjobs(path, headers)
        what: list[str] = []
        for _ in range(self.rng.choice([1, 1, 1, 2, 3])):
            if self.rng.random() < 0.15 and isinstance(body, dict):
                what.append(self._identity(body))
            else:
                body, done = self._mutate_json(body)
                what.append(done)
        raw = self._encode(body)
        if self.rng.random() < 0.1:
            raw, done = self._bytes(raw)
            what.append(done)
        if self.rng.random() < (0.5 if endpoint == "Events" else 0.05):
            raw, encoding, done = self._compress(raw)
            headers["Content-Encoding"] = encoding
            what.append(done)
        if endpoint == "Events" and self.rng.random() < 0.2:
            headers["Content-Type"] = "application/x-ndjson"
        return Request(endpoint, method, path, raw, headers, "; ".join(what))

    def _getjobs(self, path: str, headers: dict[str, str]) -> Request:
        values = [str(self.t.agent_id), "0", "-1", "abc", "9" * 30, "1e309", "", "1.5", "%00"]
        waits = ["", "0", "-1", "nan", "inf", "61", "abc", "1e309", "0.0"]
        params = [f"agent_id={self.rng.choice(values)}" for _ in range(self.rng.randint(0, 3))]
        if self.rng.random() < 0.5:
            params.append(f"wait={self.rng.choice(waits)}")
        if self.rng.random() < 0.3:
            params.append("antivirus=" + self.rng.choice(["Armadito", "%00", "x" * 5000]))
        query = "&".join(params)
        return Request("Getjobs", "GET", f"/api/jobs?{query}", b"", headers, query[:80])
