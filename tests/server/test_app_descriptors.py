"""An app gives back what it opened when its lifespan ends: a test process makes hundreds of
apps, and each used to keep its two sibling counters (jobs, hunts) open: four descriptors
an app, over a thousand by the end of the suite."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.testclient import TestClient

from garrison.server.app import create_app
from garrison.server.bootstrap import prepare
from garrison.server.store.engine import Database
from tests.conftest import make_settings


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _serve_once(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    db = Database(database_url)
    try:
        prepare(db, settings.data_dir, settings.resolved_secrets_key_file())
        with TestClient(create_app(settings, db)) as client:
            assert client.get("/admin/v1/health").status_code == 200
    finally:
        db.dispose()


def test_an_app_that_stopped_holds_no_descriptor_more(tmp_path: Path, database_url: str) -> None:
    _serve_once(tmp_path, database_url)  # whatever a first start opens for good
    before = _open_descriptors()
    for _ in range(3):
        _serve_once(tmp_path, database_url)  # the same node, started again
    assert _open_descriptors() <= before
