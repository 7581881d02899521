from __future__ import annotations

from pathlib import Path

import pytest

from garrison.agent.scan import hashtable
from garrison.agent.scan.signatures import (
    PACKAGED_DB,
    SignatureError,
    digests,
    load_database,
    load_hash_file,
    parse_hash_line,
    validate_files,
)
from tests.agent.helpers import EICAR_MD5, EICAR_SHA256, eicar


def test_hdb_line() -> None:
    sig = parse_hash_line(f"{EICAR_MD5}:68:Eicar-Test-Signature", ".hdb")
    assert sig is not None
    assert (sig.algo, sig.size, sig.name) == ("md5", 68, "Eicar-Test-Signature")


def test_hsb_line_sha256_sha1_and_any_size() -> None:
    sig = parse_hash_line(f"{EICAR_SHA256.upper()}:*:Name:73", ".hsb")
    assert sig is not None
    assert (sig.algo, sig.digest, sig.size) == ("sha256", EICAR_SHA256, None)
    sha1 = parse_hash_line("3395856ce81f2b7382dee72602f798b642f14140:68:X", ".hsb")
    assert sha1 is not None
    assert sha1.algo == "sha1"


@pytest.mark.parametrize("line", ["# comment", "", "   "])
def test_comments_and_blank_lines(line: str) -> None:
    assert parse_hash_line(line, ".hdb") is None


@pytest.mark.parametrize(
    ("line", "suffix"),
    [
        ("nothex:68:Name", ".hdb"),
        (f"{EICAR_MD5}:big:Name", ".hdb"),
        (f"{EICAR_MD5}:68", ".hdb"),
        (f"{EICAR_SHA256}:68:Name", ".hdb"),  # a .hdb holds MD5 only
        (f"{EICAR_MD5}:68:", ".hdb"),
    ],
)
def test_bad_lines(line: str, suffix: str) -> None:
    with pytest.raises(SignatureError):
        parse_hash_line(line, suffix)


def test_bad_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "x.hdb"
    path.write_text(f"{EICAR_MD5}:68:Ok\nbroken line\n")
    with pytest.raises(SignatureError, match=r"x\.hdb:2"):
        load_hash_file(path)


def test_packaged_database_detects_eicar() -> None:
    db = load_database([PACKAGED_DB])
    data = eicar()
    assert db.hash_count == 2
    assert db.match_hashes(digests(data), len(data)) == "Eicar-Test-Signature"
    assert db.match_hashes(digests(b"clean"), 5) is None
    # size must match when given
    assert db.match_hashes(digests(data), 69) is None
    assert db.version
    assert db.date > 0


def test_packaged_yara_rule() -> None:
    pytest.importorskip("yara")
    db = load_database([PACKAGED_DB])
    assert db.yara_count == 1
    assert db.match_yara(b"padding " + eicar() + b" more") == [("Eicar-Test-Signature", False)]
    assert db.match_yara(b"clean") == []
    # the rule file does not match itself
    assert db.match_yara((PACKAGED_DB / "garrison.yar").read_bytes()) == []


def test_local_files_load_on_top(tmp_path: Path) -> None:
    extra = tmp_path / "sigs"
    extra.mkdir()
    data = b"not really malware, but listed"
    (extra / "local.hsb").write_text(f"{digests(data)['sha256']}:{len(data)}:Local.Test\n")
    db = load_database([PACKAGED_DB, extra])
    assert db.match_hashes(digests(data), len(data)) == "Local.Test"
    assert "+" in db.version  # local files change the version


def test_validate_refuses_broken_yara(tmp_path: Path) -> None:
    pytest.importorskip("yara")
    bad = tmp_path / "bad.yar"
    bad.write_text("rule broken { condition: }")
    with pytest.raises(SignatureError, match="YARA"):
        validate_files([bad])


def test_a_table_sorted_in_several_runs_finds_every_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large tables are sorted in runs merged afterwards (so a load never holds the GIL for
    long): every digest is still found, with its own size and name, duplicates included."""
    import hashlib

    from garrison.agent.scan import signatures

    monkeypatch.setattr(hashtable, "SORT_RUN", 7)
    table = signatures.HashTable(32)
    digests = [hashlib.sha256(str(i).encode()).digest() for i in range(100)]
    for i, digest in enumerate(digests):
        table.append(digest, i, f"Threat.{i}".encode())
    table.append(digests[42], -1, b"Threat.again")
    table.freeze()
    for i, digest in enumerate(digests):
        found = sorted(table.find(digest), key=str)
        expected = [(i, f"Threat.{i}")] + ([(None, "Threat.again")] if i == 42 else [])
        assert found == sorted(expected, key=str)
    assert list(table.find(hashlib.sha256(b"absent").digest())) == []
