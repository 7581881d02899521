"""``garrison rules import-clamav`` against a real server whose ClamAV keys are test keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import clamav_testkit as kit
from tests.cli.helpers import Cli, assert_one_line_error
from tests.live import LiveServer, start_server

FILES = {
    "main.hsb": b"b" * 64 + b":*:Test.Cli-1:73\n",
    "main.ndb": b"Test.Cli-2:0:*:aabbccdd\n",
    "main.mdb": b"1024:" + b"c" * 32 + b":Test.Section\n",
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    keys = tmp_path_factory.mktemp("keys") / "clamav-keys.json"
    keys.write_text(
        json.dumps(
            {
                "cvd": {"n": str(kit.cvd_key().n), "e": kit.cvd_key().e},
                "info": {"n": str(kit.info_key().n), "e": kit.info_key().e},
            }
        )
    )
    server = start_server(
        tmp_path_factory.mktemp("server") / "data",
        extra_env={"GARRISON_CLAMAV_KEYS_FILE": str(keys)},
    )
    try:
        yield server
    finally:
        server.stop()


def test_import_makes_rule_sets_and_says_what_it_skipped(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "main.cvd"
    path.write_bytes(kit.build("main", FILES, version=62))
    result = cli("rules", "import-clamav", str(path), "-m", "monthly")
    assert result.returncode == 0, result.stderr
    assert "version 62" in result.stdout
    assert "rule set main-hsb: version 1" in result.stdout
    assert "rule set main-ndb: version 1" in result.stdout
    assert ".mdb 1 records" in result.stdout
    listed = {r["name"]: r["kind"] for r in cli.json("rules", "list")}
    assert listed["main-hsb"] == "hashes"
    assert listed["main-ndb"] == "clamav-body"


def test_a_tampered_container_is_one_line(cli: Cli, tmp_path: Path) -> None:
    data = bytearray(kit.build("main", FILES))
    data[-10] ^= 1
    path = tmp_path / "main.cvd"
    path.write_bytes(bytes(data))
    message = assert_one_line_error(cli("rules", "import-clamav", str(path), "--name", "bad"), 1)
    assert "MD5" in message


def test_a_file_that_is_not_a_container_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "main.tar.gz"
    path.write_bytes(b"x")
    message = assert_one_line_error(cli("rules", "import-clamav", str(path)), 2)
    assert ".cvd or .cld" in message
