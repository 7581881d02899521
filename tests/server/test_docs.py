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


def test_every_admin_operation_is_in_the_admin_api_doc() -> None:
    spec = create_app(Settings(database_url="sqlite://")).openapi()
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
