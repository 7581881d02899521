"""ClamAV containers: parsed and verified as libclamav does (with test keys for ClamAV's)."""

from __future__ import annotations

import gzip
import hashlib

import pytest

from garrison.common import clamav_cvd
from tests import clamav_testkit as kit

EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
HDB = f"{EICAR_MD5}:68:Test.Eicar-hdb\n".encode()
HSB = b"a" * 64 + b":*:Test.Sha256:73\n"
NDB = b"Test.Body-1:0:*:deadbeef??cafe\nTest.Body-2:1:EP+0:aabbccdd\n"
LDB = b"Test.Logical-1;Engine:51-255,Target:1;0;aabb\nTest.Logical-2;Target:0;0;ccdd\n"
FILES = {"test.hdb": HDB, "test.hsb": HSB, "test.ndb": NDB, "test.ldb": LDB}


def test_a_signed_cvd_parses_into_its_members_and_skipped_kinds() -> None:
    data = kit.build("test", FILES, version=42, stime=1700000000)
    container = clamav_cvd.parse(data, "cvd", kit.keys())
    assert container.format == "cvd"
    assert container.header.version == 42
    assert container.header.stime == 1700000000
    assert container.header.sigs == 6
    assert [m.name for m in container.members] == ["test.hdb", "test.hsb", "test.ndb"]
    assert container.members[2].data == NDB
    assert container.records == {"hdb": 1, "hsb": 1, "ndb": 2}
    assert container.skipped == {"ldb": 2}
    assert container.info_name == "test.info"


def test_a_cld_is_plain_tar_and_its_header_md5_is_not_checked() -> None:
    data = kit.build("test", FILES, compressed=False)
    assert data[512:519] == b"COPYING"
    # freshclam rewrites a .cld's archive, so libclamav skips the header MD5 and dsig:
    header = data[:512].decode().replace(hashlib.md5(data[512:]).hexdigest(), "0" * 32)
    container = clamav_cvd.parse(header.encode() + data[512:], "cld", kit.keys())
    assert [m.name for m in container.members] == ["test.hdb", "test.hsb", "test.ndb"]


def test_a_cld_member_altered_is_refused_by_the_info_checksums() -> None:
    data = kit.build("test", FILES, compressed=False)
    tampered = data.replace(b"Test.Eicar-hdb", b"Test.Eicar-HDB")
    with pytest.raises(clamav_cvd.BadSignature, match=r"test\.hdb does not match"):
        clamav_cvd.parse(tampered, "cld", kit.keys())


def test_the_archive_altered_after_signing_is_an_md5_mismatch() -> None:
    data = bytearray(kit.build("test", FILES))
    data[-30] ^= 0xFF
    with pytest.raises(clamav_cvd.Md5Mismatch, match="MD5"):
        clamav_cvd.parse(bytes(data), "cvd", kit.keys())


def test_a_header_md5_fixed_up_without_the_key_fails_the_signature() -> None:
    data = kit.build("test", FILES)
    body = gzip.compress(gzip.decompress(data[512:]).replace(b"Test.Eicar", b"Fake.Eicar"))
    old = data[:512].decode().split(":")[5]
    header = data[:512].decode().replace(old, hashlib.md5(body).hexdigest())
    with pytest.raises(clamav_cvd.BadSignature, match="digital signature"):
        clamav_cvd.parse(header.encode() + body, "cvd", kit.keys())


def test_a_container_signed_by_another_key_is_refused() -> None:
    data = kit.build("test", FILES)
    # The default keys are ClamAV's published ones: our test key is not theirs.
    with pytest.raises(clamav_cvd.BadSignature):
        clamav_cvd.parse(data, "cvd")


def test_an_info_signed_by_another_key_is_refused() -> None:
    data = kit.build("test", FILES)
    other = clamav_cvd.ClamAVKeys(cvd=kit.cvd_key().public)  # ClamAV's .info key
    with pytest.raises(clamav_cvd.BadSignature, match=r"\.info signature"):
        clamav_cvd.parse(data, "cvd", other)


@pytest.mark.parametrize("cut", [0, 100, 511, 512, 600])
def test_a_truncated_cvd_is_refused(cut: int) -> None:
    data = kit.build("test", FILES)
    with pytest.raises((clamav_cvd.Truncated, clamav_cvd.Md5Mismatch)):
        clamav_cvd.parse(data[:cut], "cvd", kit.keys())


def test_a_truncated_cld_is_refused_as_truncated() -> None:
    data = kit.build("test", FILES, compressed=False)
    with pytest.raises(clamav_cvd.Truncated):
        clamav_cvd.parse(data[: 512 + 512 * 5 + 100], "cld", kit.keys())


def test_a_file_that_is_not_a_container_has_a_bad_header() -> None:
    with pytest.raises(clamav_cvd.BadHeader, match="ClamAV-VDB"):
        clamav_cvd.parse(b"PK\x03\x04" + b"\0" * 600, "cvd", kit.keys())
    with pytest.raises(clamav_cvd.BadHeader, match="version"):
        clamav_cvd.parse(b"ClamAV-VDB:x:notanumber:1:1:m:d:b:0".ljust(600), "cvd", kit.keys())


def test_the_header_and_the_info_must_agree() -> None:
    data = kit.build("test", FILES, compressed=False, version=7)
    header = data[:512].decode().replace(":7:", ":8:", 1)
    with pytest.raises(clamav_cvd.BadHeader, match="does not agree"):
        clamav_cvd.parse(header.encode() + data[512:], "cld", kit.keys())


def test_clamav_number_encoding_round_trips_least_significant_digit_first() -> None:
    assert clamav_cvd.decode_number("ba") == 1
    assert clamav_cvd.decode_number("ab") == 64
    for value in (0, 1, 63, 64, 2**1023 + 12345):
        assert clamav_cvd.decode_number(clamav_cvd.encode_number(value)) == value
    with pytest.raises(clamav_cvd.BadSignature):
        clamav_cvd.decode_number("ab-")


def test_the_published_keys_are_clamavs() -> None:
    keys = clamav_cvd.CLAMAV_KEYS
    assert keys.cvd.e == 100001027
    assert keys.info.e == 100002049
    assert keys.cvd.n.bit_length() == 1024
    assert str(keys.cvd.n).startswith("1186409955516453426")
    assert str(keys.cvd.n).endswith("2693037")
    assert str(keys.info.n).startswith("110888949830485")
    assert str(keys.info.n).endswith("2747977")


def test_format_of_names_the_container_kind() -> None:
    assert clamav_cvd.format_of("daily.CVD") == "cvd"
    assert clamav_cvd.format_of("/x/main.cld") == "cld"
    with pytest.raises(clamav_cvd.BadHeader):
        clamav_cvd.format_of("main.tar.gz")
