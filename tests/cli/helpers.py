"""Running the admin CLI as a person does: ``python -m garrison.cli …`` as a subprocess, with
the test runner's GARRISON_* settings removed, against a live server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.live import LiveServer
from tests.support import ArmaditoAgent


def clean_env(**extra: str) -> dict[str, str]:
    """The test runner's environment without any GARRISON_* setting (nor a terminal width)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    env.pop("COLUMNS", None)
    env.update(extra)
    return env


def garrison(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "garrison.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env() if env is None else env,
        input=stdin,
        timeout=60,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@dataclass
class Cli:
    """Runs the CLI with ``--server`` and ``--token`` pointing at the module's server."""

    live: LiveServer
    cwd: Path

    def __call__(self, *args: str | int, stdin: str = "") -> subprocess.CompletedProcess[str]:
        conn = ["--server", self.live.url, "--token", self.live.token]
        return garrison(*map(str, args), *conn, cwd=self.cwd, stdin=stdin)

    def json(self, *args: str | int, stdin: str = "") -> Any:
        result = self(*args, "--json", stdin=stdin)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        return json.loads(result.stdout)


def enroll(cli: Cli) -> tuple[ArmaditoAgent, int]:
    key = cli.json("keys", "create", "--uses", "1")["key"]
    agent = ArmaditoAgent(httpx.Client(base_url=cli.live.url))
    assert agent.enroll(key).status_code == 200
    return agent, agent.agent_id
