"""Signed content with two `garrison serve` processes on one PostgreSQL database sharing
their content keys (GARRISON_CONTENT_KEY_DIR): a rule added on one node reaches the
check-ins answered by the other within its watch interval, and both sign alike."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from garrison.server.content.signing import verify
from tests.live import start_server
from tests.server.test_content_api import YARA, GarrisonAgent
from tests.support import wait_for


def test_a_rule_added_on_one_node_reaches_check_ins_on_the_other(
    tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several nodes share a PostgreSQL database")
    keys = tmp_path / "content-keys"
    env = {
        "GARRISON_SECRETS_KEY_FILE": str(tmp_path / "secrets.key"),
        "GARRISON_CONTENT_KEY_DIR": str(keys),
        "GARRISON_CONTENT_WATCH_SECONDS": "0.2",
    }
    first = start_server(tmp_path / "a", database_url, env)
    second = start_server(tmp_path / "b", database_url, env)
    try:
        admin = {"Authorization": f"Bearer {first.token}"}
        key = httpx.post(
            f"{first.url}/admin/v1/enrollment-keys",
            headers=admin,
            json={"uses": 1, "expires_in": 3600},
        ).json()["key"]
        with httpx.Client(base_url=second.url) as client:
            agent = GarrisonAgent(client)
            enrolled = agent.enroll(key).json()
            pinned = {k["key_id"]: k["public_key"] for k in enrolled["content_keys"]}
            before = agent.getjobs().json()["content"]
            added = httpx.post(
                f"{first.url}/admin/v1/rules",
                headers=admin,
                json={"kind": "yara", "name": "two-nodes", "content": YARA},
            )
            assert added.status_code == 201, added.text
            after = wait_for(
                lambda: agent.getjobs().json()["content"],
                lambda c: c["serial"] > before["serial"],
                what="the new serial on the other node",
            )
            envelope = agent.get("content/manifest").json()
            assert verify(pinned[envelope["key_id"]], envelope["signature"], envelope["manifest"])
            assert envelope["manifest"]["serial"] == after["serial"]
            assert [f["ruleset"] for f in envelope["manifest"]["files"]] == ["two-nodes"]
        assert sorted(p.name for p in keys.iterdir()) == ["content-key.pem"]
    finally:
        first.stop()
        second.stop()
