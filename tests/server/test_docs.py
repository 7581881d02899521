"""The docs stay true: every admin API operation is documented, every setting is listed."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from garrison.server.app import create_app
from garrison.server.options.service import OPTIONS
from garrison.server.settings import Settings
from tests.conftest import Server
from tests.support import assert_json_error

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_admin_operation_is_in_the_admin_api_doc(tmp_path: Path) -> None:
    spec = create_app(Settings(database_url="sqlite://", data_dir=tmp_path)).openapi()
    text = (DOCS / "admin-api.md").read_text()
    documented = set(re.findall(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)`", text, re.M))
    operations = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert operations - documented == set(), "undocumented operations"
    assert documented - operations == set(), "documented operations that do not exist"


def test_every_environment_setting_is_in_the_operations_doc() -> None:
    text = (DOCS / "operations.md").read_text()
    for name in Settings.model_fields:
        if name in ("host", "port"):
            continue
        assert f"GARRISON_{name.upper()}" in text, name
    for key in OPTIONS:
        assert key in text, key


def test_the_docs_page_loads_nothing_from_outside(server: Server) -> None:
    """Defect d: /admin/v1/docs was blank offline, its Swagger UI came from a CDN."""
    if server.db.backend != "sqlite":
        pytest.skip("the page does not depend on the database")
    client = server.client
    page = client.get("/admin/v1/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert re.findall(r"""(?:https?:)?//[^\s"'<>]+""", page.text) == []
    assert "SwaggerUIBundle" in page.text
    assert "url: '/admin/v1/openapi.json'" in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3, assets
    kinds = {"js": "javascript", "css": "text/css", "png": "image/png"}
    for url in assets:
        assert url.startswith("/admin/v1/docs/assets/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert kinds[url.rsplit(".", 1)[1]] in asset.headers["content-type"], url
        assert len(asset.content) > 500, url
    assert "SwaggerUIBundle" in client.get("/admin/v1/docs/assets/swagger-ui-bundle.js").text
    assert_json_error(client.get("/admin/v1/docs/assets/nothing.js"), 404, "not_found")
    assert_json_error(client.post("/admin/v1/docs/assets/swagger-ui.css"), 405)


def test_the_vendored_swagger_ui_keeps_its_licence() -> None:
    shipped = resources.files("garrison.server") / "static" / "swagger-ui"
    assert "Apache License" in (shipped / "LICENSE").read_text()
    version = (shipped / "VERSION").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    names = {entry.name for entry in shipped.iterdir()}
    assert names == {
        "LICENSE",
        "NOTICE",
        "VERSION",
        "favicon-32x32.png",
        "swagger-ui-bundle.js",
        "swagger-ui-bundle.js.LICENSE.txt",
        "swagger-ui.css",
    }


ROOT = DOCS.parent


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```(?:sh|bash|shell)?\n(.*?)^```", text, re.M | re.S)


def curl_commands(block: str) -> list[str]:
    """Each curl command of a shell block, its continuation lines joined (a line ending in
    a backslash, or inside a quoted body); a commented-out one counts too."""
    lines = [re.sub(r"^\s*#\s?", "", line) for line in block.splitlines()]
    commands: list[str] = []
    current: list[str] | None = None
    for line in lines:
        if current is None:
            if "curl " not in line:
                continue
            current = [line[line.index("curl ") :]]
        else:
            current.append(line)
        text = "\n".join(current)
        if not text.rstrip().endswith("\\") and text.count("'") % 2 == 0:
            commands.append(text)
            current = None
    return commands


def test_every_curl_that_sends_json_says_so() -> None:
    """Without ``Content-Type: application/json`` the admin API answers 422."""
    checked = 0
    for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for block in shell_blocks(path.read_text()):
            for command in curl_commands(block):
                if re.search(r"\s(-d|--data|--data-raw)\s", command):
                    checked += 1
                    assert "Content-Type: application/json" in command, (path.name, command)
    assert checked >= 4  # the README walkthrough's three and docs/agent.md's


def test_the_readme_walkthrough_needs_nothing_pasted_by_hand() -> None:
    """Each value a later step needs (key, agent token) is taken from an earlier answer."""
    walkthrough = (ROOT / "README.md").read_text().split("## Five-minute walkthrough", 1)[1]
    block = shell_blocks(walkthrough)[0]
    for line in block.splitlines():
        code = line.split("#", 1)[0]
        assert "…" not in code, line
