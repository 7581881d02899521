"""Validation of each content kind (garrison.server.content.formats), the canonical JSON and
signatures (signing), and the line delta (delivery.line_delta)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import orjson
import pytest

from garrison.server.content import formats
from garrison.server.content.delivery import line_delta
from garrison.server.content.signing import KEY_FILE, KeyRing, canonical, key_id, sign, verify

SHA256 = "ab" * 32
SHA1 = "cd" * 20
MD5 = "ef" * 16


def refused(kind: str, content: str) -> formats.FormatError:
    with pytest.raises(formats.FormatError) as caught:
        formats.check(kind, content)
    return caught.value


# -- yara --------------------------------------------------------------------------------------


def test_yara_counts_rules_and_refuses_with_the_compilers_line() -> None:
    ok = formats.check("yara", "rule a { condition: true }\nrule b { condition: false }\n")
    assert (ok.records, ok.ext) == (2, "yar")
    error = refused("yara", "rule a {\n  condition:\n    nonsense\n}\n")
    assert "line 3" in error.message
    assert "does not compile" in error.message


def test_yara_includes_are_refused() -> None:
    error = refused("yara", 'include "/etc/passwd"\nrule a { condition: true }\n')
    assert "includes are disabled" in error.message


def test_a_yara_rule_over_the_time_budget_is_refused() -> None:
    slow = "rule slow {\n strings:\n  $a = /a.*b/\n condition:\n  $a\n}\n"
    assert "time budget" in refused("yara", slow).message


def test_a_yara_rule_over_the_compile_size_budget_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(formats, "YARA_COMPILED_MAX_BYTES", 100)
    assert "compiled size budget" in refused("yara", "rule a { condition: true }\n").message


# -- hashes ------------------------------------------------------------------------------------


def test_hashes_md5_is_hdb_and_sha_is_hsb() -> None:
    md5 = formats.check("hashes", f"{MD5}:68:Eicar\n")
    assert (md5.records, md5.ext) == (1, "hdb")
    sha = formats.check("hashes", f"{SHA256}:*:A\n{SHA1}:12:B:90\n")
    assert (sha.records, sha.ext) == (2, "hsb")
    assert sha.meta["hash_types"] == ["sha1", "sha256"]


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        (f"{SHA256}:*:ok\nzz:1:bad\n", 2, "not an MD5"),
        (f"{SHA256}:many:x\n", 1, "size"),
        (f"{SHA256}:1:\n", 1, "name is empty"),
        (f"{SHA256}:1\n", 1, "expected hash:size:name"),
        (f"{SHA256}:1:a\n\n{SHA256}:2:b\n", 2, "empty line"),
        (f"{SHA256}:1:a\r\n", 1, "carriage return"),
        (f"{SHA256}:1:a\n{MD5}:1:b\n", 2, "cannot share"),
    ],
)
def test_a_malformed_hash_line_is_named(content: str, line: int, words: str) -> None:
    error = refused("hashes", content)
    assert error.line == line
    assert words in error.message
    assert error.message.startswith(f"line {line}: ")


# -- ioc, blocklist, devices, clamav-body, script ---------------------------------------------


def test_ioc_and_blocklist_lines() -> None:
    text = f"# comment\n\nhash:{SHA256}\npath:/tmp/*.sh\nname:evil.exe\npath:C:\\x\\y\n"
    ioc = formats.check("ioc", text)
    assert (ioc.records, ioc.ext) == (4, "ioc")
    assert ioc.meta == {"hash": 1, "path": 2, "name": 1}
    assert formats.check("blocklist", text).ext == "blk"
    assert refused("ioc", "path:relative/x\n").line == 1
    assert "unknown indicator type" in refused("blocklist", "# c\nurl:http://x\n").message
    assert refused("ioc", "name:a/b\n").line == 1
    assert "at least one" in refused("ioc", "# only a comment\n").message


def test_device_rules() -> None:
    ok = formats.check(
        "devices", "allow usb 046d:c52b\nblock usb *:* \n# x\nallow usb 1234:* SN1\n"
    )
    assert (ok.records, ok.ext) == (3, "dev")
    assert refused("devices", "deny usb 046d:c52b\n").line == 1
    assert refused("devices", "allow pci 046d:c52b\n").line == 1
    assert refused("devices", "allow usb 46d:c52b\n").line == 1


def test_ndb_shapes() -> None:
    ok = formats.check("clamav-body", "Test.Sig:0:*:68656c6c6f\nX:1:EP+10:aa??bb*cc{2-4}dd:51\n")
    assert (ok.records, ok.ext) == (2, "ndb")
    assert refused("clamav-body", "A:15:*:aabb\n").line == 1
    assert refused("clamav-body", "A:0:somewhere:aabb\n").line == 1
    assert refused("clamav-body", "A:0:*:xyz\n").line == 1
    assert refused("clamav-body", "A:0:*\n").line == 1


def test_scripts_name_their_interpreter() -> None:
    ok = formats.check("script", "#!/usr/bin/env python3\nprint('hi')\n")
    assert ok.meta == {"interpreter": "python3"}
    assert formats.check("script", "#!/bin/sh\necho\n").meta == {"interpreter": "sh"}
    assert refused("script", "echo no shebang\n").line == 1
    assert "not one of" in refused("script", "#!/usr/bin/ruby\n").message


def test_every_kind_refuses_empty_content_and_unknown_kinds() -> None:
    for kind in formats.KINDS:
        assert "empty" in refused(kind, "  \n").message
    assert "unknown kind" in refused("exe", "x").message


# -- signing -----------------------------------------------------------------------------------


def test_canonical_is_sorted_compact_utf8() -> None:
    assert canonical({"b": 1, "a": ["é", 2]}) == '{"a":["é",2],"b":1}'.encode()
    value = {"z": {"y": 1, "x": None}, "a": "\u00e9"}
    same = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical(value) == same.encode("utf-8")


def test_keys_are_made_once_with_0600_and_sign(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(tmp_path / "data")
    path = tmp_path / "data" / KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    again = KeyRing.load_or_create(tmp_path / "data")
    assert again.current_id == ring.current_id
    public = ring.public_b64(ring.current_id)
    assert public is not None
    assert key_id(base64.b64decode(public)) == ring.current_id
    key = ring.get(ring.current_id)
    assert key is not None
    signature = sign(key, {"a": 1})
    assert verify(public, signature, {"a": 1})
    assert not verify(public, signature, {"a": 2})
    assert not verify(public, "bm90IGEgc2lnbmF0dXJl", {"a": 1})


def test_rotation_keeps_the_old_key_and_can_be_undone(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(tmp_path)
    old_id, new_id = ring.rotate()
    assert old_id != new_id
    assert ring.current_id == new_id
    assert ring.get(old_id) is not None
    kept = tmp_path / f"content-key-{old_id}.pem"
    assert kept.stat().st_mode & 0o777 == 0o600
    ring.forget(old_id)
    assert not kept.exists()
    assert ring.get(old_id) is None

    before = ring.current_id
    undone_old, _ = ring.rotate()
    ring.undo_rotation(undone_old)
    assert ring.current_id == before


def test_a_key_file_that_is_not_ed25519_is_refused(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("not a key\n")
    os.chmod(tmp_path / KEY_FILE, 0o600)
    with pytest.raises(ValueError, match="PEM private key"):
        KeyRing.load_or_create(tmp_path)


# -- the line delta ----------------------------------------------------------------------------


def apply(base: bytes, delta: bytes) -> bytes:
    d = orjson.loads(delta)
    remove = set(d["remove"])
    kept = [line for line in base.decode().split("\n")[:-1] if line not in remove]
    return "".join(line + "\n" for line in kept + d["add"]).encode()


def test_a_delta_of_a_few_changes_rebuilds_the_target() -> None:
    lines = [f"{i:064x}:*:H.{i}" for i in range(1000)]
    base = ("\n".join(lines) + "\n").encode()
    changed = lines[:10] + lines[20:] + [f"{'f' * 64}:*:New.{i}" for i in range(5)]
    target = ("\n".join(changed) + "\n").encode()
    sha_b, sha_t = hashlib.sha256(base).hexdigest(), hashlib.sha256(target).hexdigest()
    delta = line_delta(base, target, sha_b, sha_t)
    assert delta is not None
    assert len(delta) < len(target) // 10
    assert orjson.loads(delta)["format"] == "line-delta-1"
    assert hashlib.sha256(apply(base, delta)).hexdigest() == sha_t


def test_no_delta_when_lines_are_reordered_or_it_would_not_be_smaller() -> None:
    assert line_delta(b"a\nb\n", b"b\na\n", "x", "y") is None
    assert line_delta(b"a\n", b"a\nb", "x", "y") is None  # no final newline
    assert line_delta(b"a\n", b"b\n", "x", "y") is None  # the delta is larger than the file
