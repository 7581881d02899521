"""``--help`` of both command lines: a flag shows no type (it takes no value); an option
that takes one still shows its type."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from garrison.agent.cli import app as agent_app
from garrison.cli.main import app as admin_app


def command_paths(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and group, as the arguments that reach it (Typer's own click)."""
    yield path
    if hasattr(group, "commands"):
        for name, sub in group.commands.items():
            yield from command_paths(sub, (*path, name))


@pytest.mark.parametrize("app", [admin_app, agent_app], ids=["garrison", "garrison-agent"])
def test_no_flag_is_shown_as_taking_a_bool(app: typer.Typer) -> None:
    runner = CliRunner()
    paths = list(command_paths(typer.main.get_command(app)))
    assert len(paths) > 5
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "--help" in result.output, path
        assert "<bool>" not in result.output, (path, result.output)


def test_options_taking_a_value_still_show_its_type() -> None:
    result = CliRunner().invoke(admin_app, ["events", "search", "--help"], env={"COLUMNS": "200"})
    assert "<int range>" in result.output  # --limit
    result = CliRunner().invoke(agent_app, ["--help"], env={"COLUMNS": "200"})
    assert "<float range>" in result.output
