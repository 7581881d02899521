from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from garrison.agent.config import ScanConfig
from garrison.agent.scan.engine import Engine, excluded, iso_duration
from garrison.agent.scan.signatures import PACKAGED_DB, load_database
from tests.agent.helpers import EICAR_SHA256, eicar, write_eicar


@pytest.fixture
def engine() -> Engine:
    return Engine(load_database([PACKAGED_DB]), ScanConfig(exclude=[]))


def test_eicar_and_clean_file(engine: Engine, tmp_path: Path) -> None:
    write_eicar(tmp_path / "eicar.com")
    (tmp_path / "clean.txt").write_text("hello")
    result = engine.scan([str(tmp_path)])
    assert (result.scanned, result.malware, result.suspicious) == (2, 1, 0)
    assert not result.errors
    det = result.detections[0]
    assert det.path == str(tmp_path / "eicar.com")
    assert det.threat == "Eicar-Test-Signature"
    assert det.sha256 == EICAR_SHA256
    assert det.detection_time > 0


def test_padded_eicar_found_by_yara_only(engine: Engine, tmp_path: Path) -> None:
    pytest.importorskip("yara")
    (tmp_path / "padded.txt").write_bytes(b"prefix\n" + eicar() + b"\nsuffix")
    result = engine.scan([str(tmp_path)])
    assert [(d.threat, d.module) for d in result.detections] == [("Eicar-Test-Signature", "yara")]


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_members_and_nested_zip(engine: Engine, tmp_path: Path) -> None:
    inner = _zip({"deep/eicar.com": eicar()})
    (tmp_path / "outer.zip").write_bytes(_zip({"readme.txt": b"hi", "inner.zip": inner}))
    result = engine.scan([str(tmp_path)])
    assert result.malware == 1
    det = result.detections[0]
    assert det.path == str(tmp_path / "outer.zip")
    assert det.member == "inner.zip/deep/eicar.com"
    assert det.sha256 == EICAR_SHA256
    assert det.file_sha256 != EICAR_SHA256


def test_zip_member_over_limit_is_an_error_not_a_crash(tmp_path: Path) -> None:
    engine = Engine(load_database([PACKAGED_DB]), ScanConfig(exclude=[], archive_max_size=10))
    (tmp_path / "a.zip").write_bytes(_zip({"eicar.com": eicar()}))
    result = engine.scan([str(tmp_path)])
    assert result.malware == 0
    assert any("archive member limit" in e for e in result.errors)


def test_broken_zip_is_an_error(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    result = engine.scan([str(tmp_path)])
    assert result.scanned == 1
    assert any("broken.zip" in e for e in result.errors)


def test_symlinks_are_never_followed_out_of_the_tree(engine: Engine, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_eicar(outside / "eicar.com")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "clean.txt").write_text("ok")
    (tree / "link-to-file").symlink_to(outside / "eicar.com")
    (tree / "link-to-dir").symlink_to(outside)
    result = engine.scan([str(tree)])
    assert result.scanned == 1
    assert result.detections == []


def test_unreadable_file_is_counted_as_error(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_eicar(tmp_path / "eicar.com")
    locked = tmp_path / "locked.bin"
    locked.write_bytes(b"secret")
    real_open = engine.open_file

    def open_file(path: str) -> int:
        # Root reads chmod-000 files, so refuse the way the kernel would for anyone else.
        if path == str(locked):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path)

    monkeypatch.setattr(engine, "open_file", open_file)
    result = engine.scan([str(tmp_path)])
    assert result.scanned == 1
    assert result.malware == 1
    assert result.errors == [f"{locked}: Permission denied"]


def test_unreadable_directory_and_missing_root(engine: Engine, tmp_path: Path) -> None:
    result = engine.scan([str(tmp_path / "missing")])
    assert result.scanned == 0
    assert result.errors
    assert "missing" in result.errors[0]


def test_fifo_is_skipped_not_read(engine: Engine, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    result = engine.scan([str(tmp_path)])
    assert (result.scanned, result.skipped) == (0, 1)


def test_exclusions_and_size_limit(tmp_path: Path) -> None:
    write_eicar(tmp_path / "skipme" / "eicar.com")
    write_eicar(tmp_path / "eicar.iso")
    (tmp_path / "big.bin").write_bytes(b"x" * 200)
    config = ScanConfig(exclude=[str(tmp_path / "skipme"), "*.iso"], max_file_size=100)
    result = Engine(load_database([PACKAGED_DB]), config).scan([str(tmp_path)])
    assert result.detections == []
    assert result.skipped == 1  # big.bin


def test_progress_callback(engine: Engine, tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_text(str(i))
    seen: list[tuple[int, int]] = []
    engine.scan([str(tmp_path)], lambda done, total, _: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(1, 6)]


def test_helpers() -> None:
    assert iso_duration(90) == "PT0H1M30S"
    assert iso_duration(5400) == "PT1H30M0S"
    assert excluded("/proc/1/mem", ["/proc"])
    assert not excluded("/procfoo", ["/proc"])
    assert excluded("/a/b.iso", ["*.iso"])


def test_clamav_output_parsing() -> None:
    from garrison.agent.scan import clamav

    text = "/tmp/a/eicar.com: Win.Test.EICAR_HDB-1 FOUND\n/tmp/a/b.zip!x: Eicar FOUND\nnoise\n"
    assert clamav.parse_output(text) == [
        clamav.ClamHit("/tmp/a/eicar.com", "Win.Test.EICAR_HDB-1"),
        clamav.ClamHit("/tmp/a/b.zip!x", "Eicar"),
    ]
