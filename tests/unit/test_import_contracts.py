"""The import contracts in pyproject.toml keep up with the code: every module and package
under ``garrison.server`` has a layer, and every slice is bound by the slice contracts.

``lint-imports`` itself fails on a module no layer names (the layers contract is
``exhaustive``), but it cannot know that a new package is a slice that must also join the
"Domain slices never import the HTTP edge" contract; this test does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "src" / "garrison" / "server"
LAYERS = "Server layers: edges, then use cases and services, then the store"
SLICES_NO_EDGE = "Domain slices never import the HTTP edge"
EDGES_NO_SQLALCHEMY = "Edges do not import sqlalchemy"
# The packages under garrison.server that are not slices: the HTTP edges and the store.
NOT_SLICES = {"agentapi", "adminapi", "console", "store"}
# The edge layers: what sits above the slices (the composition modules excepted).
EDGES = {"app", "agentapi", "adminapi", "console", "docs_page", "middleware", "errors_http"}


def contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["name"]: c for c in config["contracts"]}


def children(server: Path) -> tuple[set[str], set[str]]:
    """The modules and packages directly under ``server``, and which of them are packages."""
    modules = {p.stem for p in server.glob("*.py") if p.stem != "__init__"}
    packages = {p.parent.name for p in server.glob("*/__init__.py")}
    return modules | packages, packages


def layer_names(layer: str) -> list[str]:
    return [name.strip().strip("()") for name in layer.replace("|", ":").split(":")]


def problems(
    found: set[str], packages: set[str], by_name: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """What the contracts miss, for a server holding ``found`` (of which ``packages``)."""
    layers = by_name[LAYERS]
    out = []
    if layers.get("containers") != ["garrison.server"] or layers.get("exhaustive") is not True:
        out.append(f"{LAYERS!r} must be exhaustive over garrison.server")
    placed = [name for layer in layers["layers"] for name in layer_names(layer)]
    for name in sorted(found - set(placed)):
        out.append(f"garrison.server.{name} has no layer in {LAYERS!r}")
    slice_layer = next(layer for layer in layers["layers"] if "stations" in layer)
    in_slice_layer = set(layer_names(slice_layer))
    bound = set(by_name[SLICES_NO_EDGE]["source_modules"])
    for name in sorted(packages - NOT_SLICES):
        if name not in in_slice_layer:
            out.append(f"slice {name} is not in the slices layer of {LAYERS!r}")
        if f"garrison.server.{name}" not in bound:
            out.append(f"slice {name} is missing from {SLICES_NO_EDGE!r}")
    edges = set(by_name[EDGES_NO_SQLALCHEMY]["source_modules"])
    for name in sorted(EDGES & found):
        if f"garrison.server.{name}" not in edges:
            out.append(f"edge {name} is missing from {EDGES_NO_SQLALCHEMY!r}")
    return out


def test_every_server_module_and_slice_is_in_the_contracts() -> None:
    found, packages = children(SERVER)
    assert {"stations", "jobs", "events", "store", "app"} <= found  # the listing works
    assert problems(found, packages, contracts()) == []


def test_a_new_slice_missing_from_the_contracts_is_reported() -> None:
    found, packages = children(SERVER)
    assert problems(found | {"widgets"}, packages | {"widgets"}, contracts()) == [
        f"garrison.server.widgets has no layer in {LAYERS!r}",
        f"slice widgets is not in the slices layer of {LAYERS!r}",
        f"slice widgets is missing from {SLICES_NO_EDGE!r}",
    ]


def test_a_slice_in_the_layer_but_not_in_the_edge_contract_is_reported() -> None:
    found, packages = children(SERVER)
    by_name = contracts()
    bound = by_name[SLICES_NO_EDGE]["source_modules"]
    by_name[SLICES_NO_EDGE] = {
        **by_name[SLICES_NO_EDGE],
        "source_modules": [m for m in bound if m != "garrison.server.alerts"],
    }
    assert problems(found, packages, by_name) == [
        f"slice alerts is missing from {SLICES_NO_EDGE!r}"
    ]


@pytest.mark.skipif(
    shutil.which("lint-imports", path=Path(sys.executable).parent) is None,
    reason="import-linter is not installed",
)
def test_lint_imports_fails_on_a_module_no_layer_names(tmp_path: Path) -> None:
    """The same check from import-linter's side, on a copy of the package with one more."""
    shutil.copytree(ROOT / "src" / "garrison", tmp_path / "garrison")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "garrison" / "server" / "widgets").mkdir()
    (tmp_path / "garrison" / "server" / "widgets" / "__init__.py").write_text('"""Widgets."""\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    assert f"{LAYERS} BROKEN" in done.stdout
    assert "- garrison.server.widgets" in done.stdout
