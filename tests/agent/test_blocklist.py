"""The agent's block list: ``.blk`` files load into the sorted hash tables (a million
entries), globs match paths and names, broken lines fail the load, and a list naming what
the agent runs on is recognised (the content carrying it is refused)."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from garrison.agent.prevention import protect
from garrison.agent.scan.blocklist import BlockList, load_into
from garrison.agent.scan.signatures import SignatureError, load_database


def test_a_million_hashes_load_and_are_found(tmp_path: Path) -> None:
    path = tmp_path / "blocklist.blk"
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(1_000_000)]
    path.write_text("# fleet\n" + "".join(f"hash:{d}\n" for d in digests))
    db = load_database([tmp_path])
    assert db.blocklist.hash_count == 1_000_000
    assert db.blocklist.match_hashes({"sha256": digests[123_456]}) == f"hash:{digests[123_456]}"
    assert db.blocklist.match_hashes({"sha256": "0" * 64}) is None


def test_globs_and_broken_lines(tmp_path: Path) -> None:
    path = tmp_path / "b.blk"
    path.write_text("path:/opt/bad/*\nname:evil*.sh\n")
    found = BlockList()
    assert load_into(found, path) == 2
    assert found.match_path("/opt/bad/x") == "path:/opt/bad/*"
    assert found.match_path("/home/u/evil-2.sh") == "name:evil*.sh"
    assert found.match_path("/home/u/good.sh") is None
    path.write_text("hash:xyz\n")
    with pytest.raises(SignatureError, match=r"b\.blk:1"):
        load_into(BlockList(), path)


def test_the_agents_own_interpreter_is_protected() -> None:
    own = os.path.realpath(sys.executable)
    digest = hashlib.sha256(Path(own).read_bytes()).hexdigest()
    assert protect.protected()[own] == digest
    listed = BlockList()
    listed.add_hash(digest, "x")
    listed.freeze()
    assert protect.named_by(listed) == [f"{own} (sha256 {digest})"]
    by_name = BlockList(names=[own.rsplit("/", 1)[-1]])
    assert protect.named_by(by_name)
    assert protect.named_by(BlockList()) == []
