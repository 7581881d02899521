"""Export-target secrets are write-only and encrypted at rest (docs/security.md, "Secrets
and confinement"): a viewer, or a copy of the database, does not get the SIEM's
credentials."""

from __future__ import annotations

import json
import stat
from typing import Any

import pytest
from sqlalchemy import text

from garrison.server.bootstrap import prepare
from tests.conftest import Server, ServerFactory
from tests.export.test_transports import HttpSink
from tests.security.test_secrets_at_rest import database_dump
from tests.support import assert_json_error

SECRETS = {"Authorization": "Bearer s3cr3t-siem-token", "X-Api-Key": "k3y-0f-the-siem"}
QUIET = {"aggregation_window_seconds": 0, "heartbeat_seconds": 0}


@pytest.fixture
def local(server_factory: ServerFactory) -> Server:
    """The webhook sink listens on loopback: the operator allows it."""
    return server_factory(export_allow_local=True)


def received(sink: HttpSink) -> list[dict[str, str]]:
    return [headers for _, headers, _ in sink.requests]


def test_secret_headers_are_shown_as_set_and_sent_as_given(local: Server) -> None:
    sink = HttpSink()
    try:
        headers = {**SECRETS, "X-Tenant": "acme"}
        created = local.admin.post(
            "/export-targets",
            {
                "name": "hook",
                "format": "eset-json",
                "transport": "http",
                "url": f"http://127.0.0.1:{sink.port}/in",
                "options": {**QUIET, "http_headers": headers},
            },
        )
        assert created.status_code == 201, created.text
        target_id = created.json()["id"]
        shown = {"Authorization": "(set)", "X-Api-Key": "(set)", "X-Tenant": "acme"}
        assert created.json()["options"]["http_headers"] == shown

        viewer = local.admin.as_role("vera", "viewer")
        for response in (
            viewer.get("/export-targets"),
            viewer.get(f"/export-targets/{target_id}"),
            local.admin.get("/export-targets"),
        ):
            assert response.status_code == 200, response.text
            for secret in SECRETS.values():
                assert secret not in response.text
        assert viewer.get(f"/export-targets/{target_id}").json()["options"]["http_headers"] == shown

        # Not in the database either (the audit log included), in no form.
        dump = database_dump(local)
        for secret in SECRETS.values():
            assert secret not in dump
            assert secret.split(" ")[-1] not in dump  # nor without "Bearer "

        assert local.admin.post(f"/export-targets/{target_id}/test").status_code == 200
        [first] = received(sink)
        assert first["authorization"] == SECRETS["Authorization"]
        assert first["x-api-key"] == SECRETS["X-Api-Key"]
        assert first["x-tenant"] == "acme"

        # A change that does not send the headers keeps them all.
        changed = local.admin.patch(f"/export-targets/{target_id}", {"options": {"batch_size": 7}})
        assert changed.status_code == 200, changed.text
        assert changed.json()["options"]["http_headers"] == shown
        # "(set)" keeps a secret; a header left out is removed; a new value replaces.
        changed = local.admin.patch(
            f"/export-targets/{target_id}",
            {"options": {"http_headers": {"Authorization": "(set)", "X-Tenant": "other"}}},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["options"]["http_headers"] == {
            "Authorization": "(set)",
            "X-Tenant": "other",
        }
        assert local.admin.post(f"/export-targets/{target_id}/test").status_code == 200
        second = received(sink)[1]
        assert second["authorization"] == SECRETS["Authorization"]
        assert "x-api-key" not in second
        # "(set)" for a secret that has no value is refused, not sent as "(set)".
        refused = local.admin.patch(
            f"/export-targets/{target_id}",
            {"options": {"http_headers": {"X-Auth-Token": "(set)"}}},
        )
        body = assert_json_error(refused, 422)
        assert body["field"] == "options.http_headers.X-Auth-Token"
    finally:
        sink.close()


@pytest.mark.parametrize(
    "url",
    ["https://user:password@siem.example/in", "https://siem.example/in?api_key=abc&x=1"],
    ids=["userinfo", "query-key"],
)
def test_credentials_in_a_url_are_refused(server: Server, url: str) -> None:
    refused = server.admin.post(
        "/export-targets",
        {"name": "u", "format": "cef", "transport": "http", "url": url},
    )
    body = assert_json_error(refused, 422)
    assert body["field"] == "url"
    assert "header" in body["error"]


def test_the_secrets_key_is_private(server: Server) -> None:
    path = server.settings.data_dir / "secrets.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes().strip()) == 44  # a Fernet key


def test_secrets_stored_in_clear_by_an_older_version_are_sealed_at_start(
    local: Server,
) -> None:
    sink = HttpSink()
    try:
        created = local.admin.post(
            "/export-targets",
            {
                "name": "old",
                "format": "eset-json",
                "transport": "http",
                "url": f"http://127.0.0.1:{sink.port}/in",
                "options": QUIET,
            },
        )
        assert created.status_code == 201, created.text
        target_id = created.json()["id"]
        # What a version before sealing stored: the header in clear among the options.
        options: dict[str, Any] = {**QUIET, "http_headers": dict(SECRETS)}
        with local.db.transaction() as session:
            session.execute(
                text("UPDATE export_targets SET options = :o WHERE id = :i"),
                {"o": json.dumps(options), "i": target_id},
            )
        assert SECRETS["Authorization"] in database_dump(local)

        prepare(local.db, local.settings.data_dir, local.settings.resolved_secrets_key_file())

        assert SECRETS["Authorization"] not in database_dump(local)
        shown = local.admin.get(f"/export-targets/{target_id}").json()["options"]
        assert shown["http_headers"] == {"Authorization": "(set)", "X-Api-Key": "(set)"}
        assert local.admin.post(f"/export-targets/{target_id}/test").status_code == 200
        assert received(sink)[0]["authorization"] == SECRETS["Authorization"]
    finally:
        sink.close()
