"""``garrison rules list|show|add|versions|diff|assign|key|fleet`` against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import Cli, assert_one_line_error
from tests.server.test_content_api import YARA, GarrisonAgent


@pytest.fixture
def agent(cli: Cli) -> Iterator[GarrisonAgent]:
    key = cli.json("keys", "create", "--uses", "1")["key"]
    made = GarrisonAgent(httpx.Client(base_url=cli.live.url))
    assert made.enroll(key).status_code == 200
    yield made
    made.client.close()


def test_add_list_show_versions_diff(cli: Cli, tmp_path: Path) -> None:
    rule = tmp_path / "demo.yar"
    rule.write_text(YARA)
    added = cli.json("rules", "add", "yara", "cli-demo", str(rule), "-m", "first")
    assert added["version"] == 1
    assert added["file"] == "cli-demo.yar"
    rule.write_text(YARA.replace("only_this", "second"))
    assert cli.json("rules", "add", "yara", "cli-demo", str(rule))["version"] == 2

    listed = cli.json("rules", "list", "--kind", "yara")
    assert ("cli-demo", 2) in [(r["name"], r["version"]) for r in listed]
    assert cli.json("rules", "show", "cli-demo", "--version", "1")["content"] == YARA
    table = cli("rules", "show", "cli-demo")
    assert table.returncode == 0, table.stderr
    assert "rule second" in table.stdout
    versions = cli.json("rules", "versions", "cli-demo")
    assert [v["version"] for v in versions["versions"]] == [2, 1]
    diff = cli("rules", "diff", "cli-demo", "1", "2")
    assert diff.returncode == 0, diff.stderr
    assert "+rule second {" in diff.stdout


def test_a_rule_that_does_not_compile_is_one_line(cli: Cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yar"
    broken.write_text("rule x {\n condition:\n  tru\n}\n")
    message = assert_one_line_error(cli("rules", "add", "yara", "cli-broken", str(broken)), 1)
    assert "line 3" in message
    assert "KIND" in assert_one_line_error(cli("rules", "add", "nope", "x", str(broken)), 2)


def test_assign_key_rotate_and_fleet(cli: Cli, agent: GarrisonAgent, tmp_path: Path) -> None:
    hashes = tmp_path / "h.hsb"
    hashes.write_text(f"{'b' * 64}:*:Cli.Test\n")
    cli.json("rules", "add", "hashes", "cli-hashes", str(hashes))
    cli.json("groups", "create", "cli-content")
    cli.json("groups", "add", "cli-content", agent.agent_id)
    shown = cli.json("rules", "assign", "--group", "cli-content", "cli-hashes@1", "--priority", "2")
    assert shown["rules"] == [{"name": "cli-hashes", "version": 1}]
    warned = cli("rules", "assign", "--group", "cli-content", "--all", "--allow-unsigned-sources")
    assert warned.returncode == 0, warned.stderr
    assert "unsigned" in warned.stderr
    assert cli.json("rules", "assign", "--group", "cli-content", "--show")["rules"] is None
    assert cli.json("rules", "assign", "--group", "cli-content", "--unset")["deleted"] is True
    assert "give the rule sets" in assert_one_line_error(cli("rules", "assign"), 2)

    before = cli.json("rules", "key", "show")
    rotated = cli.json("rules", "key", "rotate", "--overlap-hours", "2")
    assert rotated["statement"]["old_key_id"] == before["key_id"]
    after = cli.json("rules", "key", "show")
    assert after["key_id"] == rotated["statement"]["new_key_id"]
    assert after["serial"] > before["serial"]

    fleet = cli.json("rules", "fleet", "--behind")
    assert agent.agent_id in [s["station_id"] for s in fleet["stations"]]
    table = cli("rules", "fleet")
    assert table.returncode == 0, table.stderr
    assert "behind" in table.stdout
