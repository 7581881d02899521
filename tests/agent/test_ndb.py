"""ClamAV .ndb body signatures: translated to YARA, evaluated by the engine, skips counted."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from garrison.agent.config import ScanConfig
from garrison.agent.scan import ndb
from garrison.agent.scan.engine import Engine
from garrison.agent.scan.signatures import PACKAGED_DB, SignatureError, load_database

yara = pytest.importorskip("yara")


@pytest.mark.parametrize(
    ("clamav", "yara_hex"),
    [
        ("deadbeef", "DE AD BE EF"),
        ("dead??ef", "DE AD ?? EF"),
        ("dea?beef", "DE A? BE EF"),
        ("de?dbeef", "DE ?D BE EF"),
        ("dead*beef", "DE AD [-] BE EF"),
        ("dead{4}beef", "DE AD [4] BE EF"),
        ("dead{4-}beef", "DE AD [4-] BE EF"),
        ("dead{-4}beef", "DE AD [0-4] BE EF"),
        ("dead{2-6}beef", "DE AD [2-6] BE EF"),
        ("dead[1-3]beef", "DE AD [1-3] BE EF"),
        ("dead(be|bf|c0c1)ef", "DE AD ( BE | BF | C0 C1 ) EF"),
        ("dead!(be)ef", "DE AD ~BE EF"),
        ("DEADBEEF", "DE AD BE EF"),
    ],
)
def test_hex_translation(clamav: str, yara_hex: str) -> None:
    assert ndb.translate_hex(clamav) == yara_hex


@pytest.mark.parametrize(
    ("offset", "condition"),
    [
        ("*", "$a"),
        ("0", "$a at 0"),
        ("16", "$a at 16"),
        ("10,20", "$a in (10..10 + 20)"),
        ("EOF-4", "$a at filesize - 4"),
        ("EOF-8,4", "$a in (filesize - 8..filesize - 8 + 4)"),
    ],
)
def test_offset_translation(offset: str, condition: str) -> None:
    assert ndb.translate_offset(offset) == condition


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("X:3:*:aabbccdd", "target type 3 (normalised HTML)"),
        ("X:4:*:aabbccdd", "target type 4 (mail)"),
        ("X:1:EP+0:aabbccdd", "offset relative to the entry point or a section"),
        ("X:1:S2+4:aabbccdd", "offset relative to the entry point or a section"),
        ("X:1:SL+0:aabbccdd", "offset relative to the entry point or a section"),
        ("X:0:*:aabb(B)ccdd", "boundary marker (B)"),
        ("X:0:*:aa!(bb|cc)dd", "negated alternatives"),
    ],
)
def test_what_cannot_be_evaluated_is_unsupported(line: str, reason: str) -> None:
    sig = ndb.parse_line(line)
    assert sig is not None
    with pytest.raises(ndb.Unsupported) as info:
        ndb.translate(sig, 0)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "line",
    ["X:0:*", "X:zero:*:aabb", "X:0:*:aabbc", "X:0:*:aa{x}bb", "X:0:*:aa(bb", "X:0:nowhere:aabb"],
)
def test_malformed_lines_are_errors(line: str) -> None:
    def parse_and_translate() -> str:
        sig = ndb.parse_line(line)
        if sig is None:
            return ""
        return ndb.translate(sig, 0)

    with pytest.raises(ndb.NdbError):
        parse_and_translate()


def _rules(tmp_path: Path, text: str) -> ndb.NdbRules:
    path = tmp_path / "t.ndb"
    path.write_text(text)
    return ndb.load([path])


@pytest.mark.parametrize(
    ("line", "hit", "miss"),
    [
        ("T:0:*:deadbeef", b"xx\xde\xad\xbe\xefyy", b"xx\xde\xad\xbe\xeeyy"),
        ("T:0:*:de??beef", b"\xde\x00\xbe\xef", b"\xde\x00\x00\xbe\xef"),
        ("T:0:*:dea?beef", b"\xde\xa7\xbe\xef", b"\xde\xb7\xbe\xef"),
        ("T:0:*:de?dbeef", b"\xde\x3d\xbe\xef", b"\xde\x3e\xbe\xef"),
        ("T:0:*:dead*beef", b"\xde\xad" + b"z" * 500 + b"\xbe\xef", b"\xbe\xef\xde\xad"),
        ("T:0:*:dead{2}beef", b"\xde\xad..\xbe\xef", b"\xde\xad...\xbe\xef"),
        ("T:0:*:dead{2-}beef", b"\xde\xad...\xbe\xef", b"\xde\xad.\xbe\xef"),
        ("T:0:*:dead{-2}beef", b"\xde\xad.\xbe\xef", b"\xde\xad...\xbe\xef"),
        ("T:0:*:dead{1-2}beef", b"\xde\xad..\xbe\xef", b"\xde\xad\xbe\xef"),
        ("T:0:*:dead(be|c0c1)ef", b"\xde\xad\xc0\xc1\xef", b"\xde\xad\xc0\xef"),
        ("T:0:*:dead!(be)ef", b"\xde\xad\xbf\xef", b"\xde\xad\xbe\xef"),
        ("T:0:4:deadbeef", b"abcd\xde\xad\xbe\xef", b"abc\xde\xad\xbe\xef"),
        ("T:0:2,3:deadbeef", b"abcde\xde\xad\xbe\xef", b"abcdefg\xde\xad\xbe\xef"),
        ("T:0:EOF-4:deadbeef", b"abc\xde\xad\xbe\xef", b"\xde\xad\xbe\xefabc"),
        ("T:6:*:deadbeef", b"\x7fELF....\xde\xad\xbe\xef", b"\x7fELG....\xde\xad\xbe\xef"),
    ],
)
def test_translated_signatures_match_as_clamav_means(
    tmp_path: Path, line: str, hit: bytes, miss: bytes
) -> None:
    rules = _rules(tmp_path, line + "\n")
    assert rules.count == 1
    assert rules.match(hit) == ["T"]
    assert rules.match(miss) == []


def test_a_pe_target_needs_a_pe_file(tmp_path: Path) -> None:
    rules = _rules(tmp_path, "Win.Test:1:*:cafebabe0102\n")
    pe = bytearray(256)
    pe[0:2] = b"MZ"
    pe[0x3C:0x40] = (0x80).to_bytes(4, "little")
    pe[0x80:0x84] = b"PE\0\0"
    pe[0xA0:0xA6] = bytes.fromhex("cafebabe0102")
    assert rules.match(bytes(pe)) == ["Win.Test"]
    assert rules.match(b"not a PE " + bytes.fromhex("cafebabe0102")) == []


def test_skips_are_counted_by_kind_and_the_rest_still_loads(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        "A:0:*:aabbccdd\nB:3:*:aabbccdd\nC:3:*:aabbccee\nD:1:EP+0:aabbccdd\n# comment\n\n",
    )
    assert rules.count == 1
    assert dict(rules.skipped) == {
        "ndb target type 3 (normalised HTML)": 2,
        "ndb offset relative to the entry point or a section": 1,
    }


def test_a_rule_yara_refuses_is_dropped_and_counted_not_fatal() -> None:
    good = 'rule g { meta: threat_name = "Good" strings: $a = { AA BB } condition: $a }'
    bad = "rule b { strings: $a = { AA [5-2] BB } condition: $a }"
    skipped: Counter[str] = Counter()
    rules, count = ndb._compile([bad, good, bad], skipped)
    assert count == 1
    assert skipped == {"ndb refused by YARA": 2}
    assert [m.rule for m in rules.match(data=b"\xaa\xbb")] == ["g"]


def test_a_zero_jump_is_nothing() -> None:
    assert ndb.translate_hex("aa{0}bb") == "AA BB"


def test_a_malformed_file_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "bad.ndb").write_text("A:0:*:aabbccdd\nB:0:*:zz\n")
    with pytest.raises(SignatureError, match=r"bad\.ndb:2"):
        load_database([tmp_path])


def test_the_engine_detects_by_ndb_and_reports_skips(tmp_path: Path) -> None:
    sigs = tmp_path / "sigs"
    sigs.mkdir()
    (sigs / "body.ndb").write_text(
        "Test.Body-1:0:*:6d616c77617265{2-8}7061796c6f6164\nTest.Html-1:3:*:3c736372697074\n"
    )
    db = load_database([PACKAGED_DB, sigs])
    assert db.ndb.count == 1
    assert db.skipped_summary == "ndb target type 3 (normalised HTML): 1"
    assert not db.self_test_only
    files = tmp_path / "files"
    files.mkdir()
    (files / "bad.bin").write_bytes(b"..malware--payload..")
    (files / "good.bin").write_bytes(b"..malware------------payload..")
    result = Engine(db, ScanConfig(exclude=[])).scan([str(files)])
    assert [(Path(d.path).name, d.threat, d.module) for d in result.detections] == [
        ("bad.bin", "Test.Body-1", "clamav-body")
    ]
