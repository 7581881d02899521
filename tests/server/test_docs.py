"""The docs stay true: every admin API operation is documented, every setting is listed."""

from __future__ import annotations

import re
from pathlib import Path

from garrison.server.app import create_app
from garrison.server.options.service import OPTIONS
from garrison.server.settings import Settings

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
