"""Schemathesis over the admin OpenAPI document, against a real ``garrison serve`` on SQLite
and on PostgreSQL (issue 22, item 15): no request may answer 5xx, except the documented 502
of an export target's test ("could not deliver").

Every operation of ``/admin/v1/openapi.json`` gets schema-valid and schema-violating
requests (schemathesis' positive and negative generation), a bounded number per operation
with a fixed seed, so a CI run is small and repeatable.  People run it bigger::

    GARRISON_FUZZ_EXAMPLES=200 .venv/bin/pytest -q tests/fuzz/test_admin_schema.py

(``GARRISON_FUZZ_SEED`` picks another seed.)  Each backend prints one summary line;
a failure lists every operation that answered 5xx with a curl command that reproduces it.

The run keeps its own token: logout is called with a throwaway user's token, a user path
parameter never names the run's user or ``admin``, and export targets only ever point at
loopback (a closed port) or a file in the server's data directory, so nothing is sent to
an outside host.  A server that refuses loopback targets answers 422 there, which passes.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Err
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.common import free_port
from garrison.server.store.engine import normalize_url
from tests.conftest import BACKENDS, PG_URL
from tests.live import LiveServer, start_server

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("GARRISON_FUZZ_EXAMPLES", "10"))
SEED = os.environ.get("GARRISON_FUZZ_SEED")
REQUEST_TIMEOUT = 30.0
RUN_USER = "fuzz-runner"
THROWAWAY_USER = "fuzz-throwaway"
PASSWORD = "fuzz-password-0123456789"
# Operations that would end the run's own session: they run with a throwaway user's token.
WITH_THROWAWAY_TOKEN = {("POST", "/admin/v1/auth/logout")}
# The one 5xx the API documents: an export test that cannot deliver.
ALLOWED_5XX = {("POST", "/admin/v1/export-targets/{target_id}/test"): {502}}


@dataclass
class Fuzzed:
    """What one backend's run saw."""

    backend: str
    operations: int = 0
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, list[str]] = field(default_factory=dict)

    def fail(self, label: str, what: str) -> None:
        # The first few per operation are enough to reproduce it.
        found = self.failures.setdefault(label, [])
        if len(found) < 3:
            found.append(what)

    def summary(self) -> str:
        counts = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        fives = sum(n for code, n in self.statuses.items() if code >= 500)
        return (
            f"admin API fuzz [{self.backend}]: {self.operations} operations, "
            f"{self.requests} requests, statuses {{{counts}}}, {fives} 5xx, "
            f"{sum(len(v) for v in self.failures.values())} unexpected "
            f"on {len(self.failures)} operations"
        )


@dataclass
class Target:
    """The live server and the tokens the run uses."""

    live: LiveServer
    token: str
    closed_port: int

    @property
    def url(self) -> str:
        return self.live.url

    def login(self, username: str) -> str:
        response = httpx.post(
            f"{self.url}/admin/v1/auth/login",
            json={"username": username, "password": PASSWORD},
            timeout=REQUEST_TIMEOUT,
        )
        # A login rate limit may refuse it: the call then goes with no valid token (401).
        return str(response.json().get("token", "")) if response.status_code == 200 else "none"


def _scratch_postgres() -> Iterator[str]:
    """A database of its own for the run, dropped after (never another test's)."""
    assert PG_URL
    admin_url = normalize_url(PG_URL)
    name = f"garrison_fuzz_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    database_url: str | None = None
    scratch: Iterator[str] | None = None
    if request.param == "postgresql":
        if not PG_URL:
            pytest.skip("GARRISON_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
        scratch = _scratch_postgres()
        database_url = next(scratch)
    live = start_server(tmp_path / "data", database_url)
    try:
        spare = httpx.Client(
            base_url=f"{live.url}/admin/v1",
            headers={"Authorization": f"Bearer {live.token}"},
            timeout=REQUEST_TIMEOUT,
        )
        with spare:
            for username, role in ((RUN_USER, "admin"), (THROWAWAY_USER, "viewer")):
                made = spare.post(
                    "/users", json={"username": username, "password": PASSWORD, "role": role}
                )
                assert made.status_code == 201, made.text
        probe = Target(live=live, token="", closed_port=free_port())
        probe.token = probe.login(RUN_USER)
        assert probe.token != "none"
        yield probe
    finally:
        live.stop()
        if scratch is not None:
            next(scratch, None)


def _confine(case: Case[Any], target: Target) -> None:
    """Keep what the fuzzer sends where it cannot hurt: export targets at loopback (a closed
    port) or a file in the data directory, and no user operation on the run's own user."""
    params = case.path_parameters or {}
    if params.get("username") in (RUN_USER, "admin"):
        params["username"] = THROWAWAY_USER
    if not case.path.startswith("/admin/v1/export-targets") or not isinstance(case.body, dict):
        return
    body: dict[str, Any] = case.body
    if isinstance(body.get("host"), str) and body["host"]:
        body["host"] = "127.0.0.1"
    port = body.get("port")
    if isinstance(port, int) and 1 <= port <= 65535:
        body["port"] = target.closed_port
    if isinstance(body.get("url"), str) and body["url"]:
        body["url"] = f"http://127.0.0.1:{target.closed_port}/fuzz"
    if isinstance(body.get("path"), str) and body["path"]:
        body["path"] = str(target.live.data_dir / "export" / "fuzz.ndjson")
    options = body.get("options")
    if isinstance(options, dict):
        # TLS files and HTTP headers are the confinement helpers' ground: not read here.
        for name in ("tls_ca", "tls_cert", "tls_key"):
            options.pop(name, None)


def _curl(case: Case[Any], headers: dict[str, str]) -> str:
    shown = {**headers, "Authorization": "Bearer $TOKEN"}
    command: str = case.as_curl_command(headers=shown)
    return command


def _fuzz(operation: Any, target: Target, fuzzed: Fuzzed) -> None:
    method, path = operation.method.upper(), operation.path
    label = f"{method} {path}"
    key = (method, path)
    allowed = ALLOWED_5XX.get(key, set())
    strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | (
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    )

    @settings(
        max_examples=EXAMPLES * 2,
        derandomize=SEED is None,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=strategy)
    def run(case: Case[Any]) -> None:
        _confine(case, target)
        token = target.login(THROWAWAY_USER) if key in WITH_THROWAWAY_TOKEN else target.token
        headers = {"Authorization": f"Bearer {token}"}
        fuzzed.requests += 1
        try:
            response = case.call(base_url=target.url, headers=headers, timeout=REQUEST_TIMEOUT)
        except Exception as exc:  # no answer at all: the worst kind of failure
            fuzzed.statuses[599] += 1
            fuzzed.fail(
                label, f"no answer ({type(exc).__name__}: {exc}):\n  {_curl(case, headers)}"
            )
            return
        status = response.status_code
        fuzzed.statuses[status] += 1
        if status >= 500 and status not in allowed:
            fuzzed.fail(label, f"{status} {response.text[:200]}:\n  {_curl(case, headers)}")

    if SEED is not None:
        run = seed(int(SEED))(run)
    run()


def test_admin_api_answers_no_unexpected_5xx(
    target: Target, request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.params["target"]
    schema = schemathesis.openapi.from_url(f"{target.url}/admin/v1/openapi.json")
    fuzzed = Fuzzed(backend)
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the document itself is invalid
        operation = result.ok()
        fuzzed.operations += 1
        _fuzz(operation, target, fuzzed)
    # One line per backend on the terminal, captured output or not.
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n{fuzzed.summary()}")
    assert fuzzed.operations > 50, fuzzed.summary()
    health = httpx.get(f"{target.url}/admin/v1/health", timeout=REQUEST_TIMEOUT)
    assert health.status_code == 200, "the server stopped answering during the run"
    details = "\n".join(
        f"{label}:\n" + "\n".join(f"  {what}" for what in found)
        for label, found in sorted(fuzzed.failures.items())
    )
    assert not fuzzed.failures, f"{fuzzed.summary()}\n{details}"
