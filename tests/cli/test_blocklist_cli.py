"""``garrison blocklist add|list|remove`` against a real server (module-shared)."""

from __future__ import annotations

from tests.cli.helpers import Cli, assert_one_line_error

SHA = "0123456789abcdef" * 4


def test_add_list_remove_and_refusals(cli: Cli) -> None:
    added = cli.json("blocklist", "add", SHA, "-m", "from the IR team")
    assert (added["sha256"], added["comment"]) == (SHA, "from the IR team")
    listed = cli.json("blocklist", "list")
    assert [e["sha256"] for e in listed["entries"]] == [SHA]
    table = cli("blocklist", "list")
    assert table.returncode == 0, table.stderr
    assert SHA in table.stdout
    assert "from the IR team" in table.stdout
    again = cli("blocklist", "add", SHA)
    assert "already" in assert_one_line_error(again, 1)
    assert "64 hexadecimal" in assert_one_line_error(cli("blocklist", "add", "nothex"), 1)
    removed = cli("blocklist", "remove", SHA)
    assert removed.returncode == 0, removed.stderr
    assert f"lifted {SHA}" in removed.stdout
    assert cli.json("blocklist", "list")["entries"] == []
    assert "not on the block list" in assert_one_line_error(cli("blocklist", "remove", SHA), 1)
