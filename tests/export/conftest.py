"""The export tests send to sinks on this host (rsyslog, UDP/TCP/HTTP sinks on 127.0.0.1)
and write files in the test's directory: as an operator would for a SIEM on the same host,
their servers allow it (``GARRISON_EXPORT_ALLOW_LOCAL``, ``GARRISON_EXPORT_FILE_DIRS``).
``tests/security/test_export_confinement.py`` shows the refusals with the settings off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, ServerFactory


@pytest.fixture
def server_factory(server_factory: ServerFactory, tmp_path: Path) -> ServerFactory:
    def make(**overrides: Any) -> Server:
        overrides.setdefault("export_allow_local", True)
        overrides.setdefault("export_file_dirs", str(tmp_path))
        return server_factory(**overrides)

    return make
