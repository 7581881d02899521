"""The agent-only distribution (packaging/agent): its wheel builds, holds only garrison.agent
and garrison.common, and its dependencies are exactly the third-party modules they import,
in the full distribution's ranges: none of the server's libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from garrison import __version__

ROOT = Path(__file__).resolve().parents[2]
SERVER_LIBS = {
    "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "argon2-cffi",
    "lupa", "jinja2", "structlog", "prometheus-client", "pydantic-settings",
    "pyzipper", "python-multipart",
}  # fmt: skip
# Import names whose distribution is named otherwise.
DISTRIBUTION = {"yara": "yara-python", "tomli_w": "tomli-w"}


def _name(requirement: str) -> str:
    for stop in "<>=!~[ ;":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip().lower()


def _third_party_imports() -> set[str]:
    found: set[str] = set()
    for tree in ("agent", "common"):
        for path in (ROOT / "src/garrison" / tree).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return {
        DISTRIBUTION.get(n, n)
        for n in found
        if n not in sys.stdlib_module_names and n not in ("garrison", "__future__")
    }


def test_the_agent_depends_on_what_it_imports_in_the_full_ranges() -> None:
    agent = tomllib.loads((ROOT / "packaging/agent/pyproject.toml").read_text())["project"]
    full = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r): r for r in agent["dependencies"]}
    assert set(declared) == _third_party_imports()
    ranges = {_name(r): r.replace("[standard]", "") for r in full["dependencies"]}
    for name, requirement in declared.items():
        assert ranges[name] == requirement, name
    assert not set(declared) & SERVER_LIBS


@pytest.mark.slow
def test_the_agent_wheel_builds_with_only_the_agent(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(ROOT / "scripts/build-agent-wheel"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stderr
    wheel = next(tmp_path.glob("garrison_agent-*.whl"))
    assert wheel.name.startswith(f"garrison_agent-{__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(meta).decode())
    packages = {n.split("/")[1] for n in names if n.startswith("garrison/") and n.count("/") > 1}
    assert packages == {"agent", "common"}
    assert "garrison/agent/scan/db/garrison.yar" in names
    requires = {_name(r) for r in metadata.get_all("Requires-Dist") or []}
    assert requires == _third_party_imports()
    assert not requires & SERVER_LIBS
    assert metadata["Version"] == __version__
