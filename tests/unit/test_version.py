"""The version is written once, in pyproject.toml; everything else reads the installed one."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from typer.testing import CliRunner

import garrison
from garrison.agent.cli import app as agent_app
from garrison.cli.main import app as server_app

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_version_is_pyprojects() -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    # Fails on a stale install too: pip install -e . again after changing the version.
    assert importlib.metadata.version("garrison") == declared
    assert garrison.__version__ == declared


def test_both_commands_print_it() -> None:
    runner = CliRunner()
    server = runner.invoke(server_app, ["--version"])
    assert (server.exit_code, server.stdout) == (0, f"garrison {garrison.__version__}\n")
    agent = runner.invoke(agent_app, ["--version"])
    assert agent.exit_code == 0
    assert agent.stdout.strip() == f"garrison-agent {garrison.__version__}"
