"""The version is written once, in src/garrison/_version.py: both distributions' metadata
(pyproject.toml's dynamic version) and ``garrison.__version__`` come from it."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from typer.testing import CliRunner

import garrison
from garrison.agent.cli import app as agent_app
from garrison.cli.main import app as server_app

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_version_is_written_once() -> None:
    project = tomllib.loads(PYPROJECT.read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    source = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert source == "garrison._version.__version__"
    agent = tomllib.loads((PYPROJECT.parent / "packaging/agent/pyproject.toml").read_text())
    assert agent["tool"]["setuptools"]["dynamic"]["version"]["attr"] == source
    # Fails on a stale install too: pip install -e . again after changing the version.
    assert importlib.metadata.version("garrison") == garrison.__version__


def test_both_commands_print_it() -> None:
    runner = CliRunner()
    server = runner.invoke(server_app, ["--version"])
    assert (server.exit_code, server.stdout) == (0, f"garrison {garrison.__version__}\n")
    agent = runner.invoke(agent_app, ["--version"])
    assert agent.exit_code == 0
    assert agent.stdout.strip() == f"garrison-agent {garrison.__version__}"
