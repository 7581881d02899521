"""The agent API mutator run: no request, however mangled, gets a 5xx (issue 22, item 15).

Runs on every backend the fixtures give (SQLite, and PostgreSQL when
``GARRISON_TEST_DATABASE_URL`` is set), in process against the whole ASGI app.  Small by
default (CI); bigger with ``GARRISON_FUZZ_REQUESTS`` (requests per backend) and another
``GARRISON_FUZZ_SEED``::

    GARRISON_FUZZ_REQUESTS=5000 GARRISON_FUZZ_SEED=7 .venv/bin/pytest -q tests/fuzz

Each run prints one line per backend: requests sent, the count of each status, the 5xx.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from tests.conftest import Server
from tests.fuzz.agent_mutator import Mutator, Request, Targets
from tests.security.checks import create_scan_job

REQUESTS = int(os.environ.get("GARRISON_FUZZ_REQUESTS", "300"))
SEED = int(os.environ.get("GARRISON_FUZZ_SEED", "22"))


def targets(server: Server) -> Targets:
    agent = server.enrolled_agent()
    assert agent.token is not None
    jobs = [create_scan_job(server, agent.agent_id) for _ in range(3)]
    assert agent.getjobs().status_code == 200  # the jobs are now the agent's to report
    key = server.admin.new_key(uses=1_000_000)
    return Targets(agent.token, agent.uuid, agent.agent_id, [*jobs, 999_999], key)


def send(server: Server, request: Request) -> int:
    response = server.client.request(
        request.method, request.path, content=request.body or None, headers=request.headers
    )
    status: int = response.status_code
    return status


def test_no_mutated_agent_request_gets_a_5xx(
    server: Server, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    mutator = Mutator(SEED, targets(server))
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for _ in range(REQUESTS):
        sent = mutator.request()
        status = send(server, sent)
        statuses[status] += 1
        if status >= 500:
            failures.append(f"{status} {sent.describe()}")
    backend = database_url.split(":", 1)[0].split("+", 1)[0]
    counts = " ".join(f"{status}:{n}" for status, n in sorted(statuses.items()))
    line = (
        f"agent mutator [{backend}] seed={SEED}: {REQUESTS} requests, {counts}, 5xx={len(failures)}"
    )
    with capsys.disabled():  # the summary shows without -s
        print(f"\n{line}")
    assert not failures, "\n".join([line, *failures[:50]])
    # The run reached the use cases, not only the parsers' refusals.
    assert statuses[200] > REQUESTS // 20, line
