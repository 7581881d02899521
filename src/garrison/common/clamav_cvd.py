"""ClamAV's database container format (``.cvd`` and ``.cld``), read and verified as libclamav
does it, without libclamav.

A container is a 512-byte header, ``ClamAV-VDB:<build time>:<version>:<signatures>:
<functionality level>:<md5>:<dsig>:<builder>:<stime>`` padded with spaces, followed by a tar
archive: gzip'd in a ``.cvd``, plain in a ``.cld`` (the file freshclam writes after applying
incremental updates).  Inside: the signature files (``main.hdb``, ``daily.ndb``, …), a
``COPYING`` and a ``<db>.info`` listing every member with its size and SHA-256.

What libclamav checks, replicated here (``cvd.c`` ``cli_cvdverify``/``cli_cvdload``,
``dsig.c`` ``cli_versig``/``cli_versig2``, ``readdb.c`` ``cli_loadinfo``):

* ``.cvd``: the MD5 of everything after the header equals the header's MD5, and the header's
  ``dsig`` is ClamAV's signature of that MD5: the dsig, read as a number written in ClamAV's
  own base 64 (alphabet ``a-z A-Z 0-9 + /``, least significant digit first), raised to the
  public exponent modulo ClamAV's public modulus, is the 16 MD5 bytes (textbook RSA, no
  padding).
* ``.cld``: libclamav does NOT check the header's MD5 or dsig (``cli_cvdverify`` is called
  with ``skipsig`` for a .cld: freshclam rebuilt the archive, so the header's MD5 no longer
  describes it).  The trust comes from the ``.info`` member instead, as for a .cvd:
* both: the ``.info`` member must carry a ``DSIG:`` line, an RSA-PSS (SHA-256, MGF1-SHA-256,
  32-byte salt, 2048-bit) signature by ClamAV's second key over the SHA-256 of the lines before
  it; its ``ClamAV-VDB:`` line must agree with the container header on version, signature
  count, functionality level and stime; and every signature file in the archive must be listed
  in it with the right size and SHA-256.

The keys are parameters (:class:`ClamAVKeys`); the default is ClamAV's published pair (the
constants ``CLI_NSTR``/``CLI_ESTR`` of ``dsig.c`` and ``INFO_NSTR``/``INFO_ESTR`` of
``readdb.c``), so tests build and sign their own containers with test keys.

Pure: bytes in, a :class:`Container` out or a :class:`ContainerError`; no file system, no
network, no import of the server or the agent.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zlib
from dataclasses import dataclass, field

HEADER_SIZE = 512
TAR_BLOCK = 512
MD5_SIZE = 16
PSS_SIZE = 256  # cli_versig2 works on 2048-bit keys only
PSS_SALT = 32

# ClamAV's published public keys (libclamav dsig.c and readdb.c).
CLAMAV_CVD_MODULUS = int(
    "1186409955516453426030700016584531897515277744120277437465994057432431426074641447673610606"
    "4065584474976078889002228342492276248891756555100246777110966959818941043469903453223222862"
    "1591089508178591428456220796841621637175567590476666928698770143328137383952820383197532047"
    "771780196576957695822641224262693037"
)
CLAMAV_CVD_EXPONENT = 100001027
CLAMAV_INFO_MODULUS = int(
    "1108889498304854547365955610662719492392894179179504762059165869741358104332271591217249680"
    "6525381055880964520618400224333320534660299233983755341740679502866829909679955734391392668"
    "3783612215242053966310901051516412708572770803107343209516537005089417174191687239425078907"
    "0290470270758745162169105075430785038339986534648720379846417853739221140278648135982446119"
    "7231102895415093770394216666324484593935762408468516826633192140826667923494822045805347809"
    "9328484548458869717064243605586678627758760720594377033653802091016977385775154769350854694"
    "55279994113145977994084618328482151013142393373316337519977244732747977"
)
CLAMAV_INFO_EXPONENT = 100002049

# The member kinds Garrison can use, and the rest it lists as skipped.
USED_KINDS = ("hdb", "hsb", "ndb")
# Members that carry no signatures: never counted as skipped content.
_NOT_CONTENT = {"info", "copying", "cfg", "ign", "ign2", "fp", "sfp"}

_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
_DIGIT = {c: i for i, c in enumerate(_ALPHABET)}


class ContainerError(ValueError):
    """The file is not a usable ClamAV container; ``code`` says which check refused it."""

    code = "bad_container"


class BadHeader(ContainerError):
    code = "bad_header"


class Truncated(ContainerError):
    code = "truncated"


class Md5Mismatch(ContainerError):
    code = "md5_mismatch"


class BadSignature(ContainerError):
    code = "bad_signature"


class BadArchive(ContainerError):
    code = "bad_archive"


@dataclass(frozen=True)
class RSAPublicKey:
    n: int
    e: int


@dataclass(frozen=True)
class ClamAVKeys:
    """``cvd`` signs the container header's MD5, ``info`` the ``.info`` member."""

    cvd: RSAPublicKey = RSAPublicKey(CLAMAV_CVD_MODULUS, CLAMAV_CVD_EXPONENT)
    info: RSAPublicKey = RSAPublicKey(CLAMAV_INFO_MODULUS, CLAMAV_INFO_EXPONENT)


CLAMAV_KEYS = ClamAVKeys()


@dataclass(frozen=True)
class Header:
    build_time: str
    version: int
    sigs: int
    flevel: int
    md5: str
    dsig: str
    builder: str
    stime: int


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes

    @property
    def kind(self) -> str:
        return kind_of(self.name)

    @property
    def records(self) -> int:
        return count_records(self.data)


@dataclass
class Container:
    header: Header
    format: str  # "cvd" or "cld"
    members: list[Member] = field(default_factory=list)  # the kinds in USED_KINDS, in order
    skipped: dict[str, int] = field(default_factory=dict)  # other kind -> its record count
    info_name: str = ""

    @property
    def records(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for member in self.members:
            out[member.kind] = out.get(member.kind, 0) + member.records
        return out


def kind_of(name: str) -> str:
    _, dot, ext = name.rpartition(".")
    return ext.lower() if dot else name.lower()


def count_records(data: bytes) -> int:
    return sum(1 for line in data.splitlines() if line.strip() and not line.startswith(b"#"))


# -- ClamAV's number encoding and its two signature checks ------------------------------------


def decode_number(text: str) -> int:
    """``cli_decodesig``'s reading of a dsig: base 64, least significant digit first."""
    value = 0
    for i, char in enumerate(text):
        digit = _DIGIT.get(char)
        if digit is None:
            raise BadSignature(f"the digital signature has a character outside ClamAV's: {char!r}")
        value |= digit << (6 * i)
    return value


def encode_number(value: int) -> str:
    """The inverse of :func:`decode_number` (used to sign test containers)."""
    if value < 0:
        raise ValueError("negative")
    out = []
    while value:
        out.append(_ALPHABET[value & 63])
        value >>= 6
    return "".join(out) or "a"


def _decode_sig(dsig: str, length: int, key: RSAPublicKey) -> bytes:
    plain = pow(decode_number(dsig), key.e, key.n)
    size = (plain.bit_length() + 7) // 8
    if size > length:
        raise BadSignature("the digital signature does not decode with the key")
    return plain.to_bytes(length, "big")


def versig(md5_hex: str, dsig: str, key: RSAPublicKey) -> None:
    """``cli_versig``: raises BadSignature unless dsig decodes to the MD5."""
    if len(md5_hex) != 2 * MD5_SIZE or not md5_hex[:1].isalnum():
        raise BadSignature("the header's MD5 is malformed")
    if _decode_sig(dsig, MD5_SIZE, key).hex() != md5_hex:
        raise BadSignature("the container's digital signature does not match its MD5")


def _mgf1(seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def versig2(sha256: bytes, dsig: str, key: RSAPublicKey) -> None:
    """``cli_versig2``: EMSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) on a 2048-bit key."""
    em = _decode_sig(dsig, PSS_SIZE, key)
    if em[-1] != 0xBC:
        raise BadSignature("the .info signature does not verify")
    block = PSS_SIZE - 32 - 1
    masked, digest = em[:block], em[block : block + 32]
    data = bytearray(a ^ b for a, b in zip(masked, _mgf1(digest, block), strict=True))
    data[0] &= 0x7F
    start = data.find(1)
    if start < 0 or block - (start + 1) != PSS_SALT or any(data[:start]):
        raise BadSignature("the .info signature does not verify")
    salt = bytes(data[start + 1 :])
    if hashlib.sha256(b"\0" * 8 + sha256 + salt).digest() != digest:
        raise BadSignature("the .info signature does not verify")


# -- header -----------------------------------------------------------------------------------


def parse_header(raw: bytes) -> Header:
    """``cl_cvdparse`` of the first 512 bytes (trailing spaces and newlines stripped)."""
    if len(raw) < HEADER_SIZE:
        raise Truncated(f"the file is {len(raw)} bytes, shorter than ClamAV's 512-byte header")
    text = raw[:HEADER_SIZE].decode("latin-1").rstrip(" \n\r\0")
    return parse_header_line(text)


def parse_header_line(text: str) -> Header:
    if not text.startswith("ClamAV-VDB:"):
        raise BadHeader("not a ClamAV database: the header does not start with 'ClamAV-VDB:'")
    parts = text.split(":")
    if len(parts) < 8:
        raise BadHeader(f"the ClamAV header has {len(parts)} fields, expected 9")

    def number(index: int, what: str) -> int:
        value = parts[index].strip()
        if not value.isdigit():
            raise BadHeader(f"the ClamAV header's {what} is not a number: {value!r}")
        return int(value)

    stime = number(8, "creation time in seconds") if len(parts) > 8 and parts[8] else 0
    return Header(
        build_time=parts[1],
        version=number(2, "version"),
        sigs=number(3, "signature count"),
        flevel=number(4, "functionality level"),
        md5=parts[5].strip(),
        dsig=parts[6].strip(),
        builder=parts[7].strip(),
        stime=stime,
    )


# -- archive ----------------------------------------------------------------------------------


def _inflate(body: bytes) -> bytes:
    try:
        return gzip.decompress(body)
    except EOFError:
        raise Truncated("the compressed archive ends early (truncated download?)") from None
    except (OSError, zlib.error) as exc:
        raise BadArchive(f"the archive is not valid gzip: {exc}") from None


def _members(tar_bytes: bytes) -> list[Member]:
    """Members of a flat tar, read block by block as ``cli_tgzload`` does: regular files only
    (a directory or any other type is refused), no slash in a name.  Stricter than libclamav on
    one point: the archive must end with tar's zero block, so one cut at a member boundary is
    reported as truncated rather than read as a shorter archive."""
    out: list[Member] = []
    offset = 0
    total = len(tar_bytes)
    while True:
        block = tar_bytes[offset : offset + TAR_BLOCK]
        if len(block) < TAR_BLOCK:
            raise Truncated("the archive ends early (no end-of-archive block; truncated?)")
        if block[0] == 0:
            return out
        name = block[:100].split(b"\0", 1)[0].decode("latin-1")
        if "/" in name:
            raise BadArchive(f"member {name!r}: slash separators are not allowed")
        kind = block[156:157]
        if kind == b"5":
            raise BadArchive(f"member {name!r}: directories are not allowed")
        if kind not in (b"0", b"\0"):
            raise BadArchive(f"member {name!r}: unknown type flag {kind!r}")
        size_text = block[124:136].split(b"\0", 1)[0].strip() or b"0"
        try:
            size = int(size_text, 8)
        except ValueError:
            raise BadArchive(f"member {name!r}: invalid size in header") from None
        start = offset + TAR_BLOCK
        if start + size > total:
            raise Truncated(f"member {name!r} is cut short (truncated archive)")
        out.append(Member(name, tar_bytes[start : start + size]))
        offset = start + (size + TAR_BLOCK - 1) // TAR_BLOCK * TAR_BLOCK


def _info_lines(data: bytes) -> tuple[bytes, str | None, list[str]]:
    """(the bytes the DSIG covers, the DSIG or None, the lines before it)."""
    signed = hashlib.sha256()
    lines: list[str] = []
    for raw in data.split(b"\n"):
        if raw.startswith(b"DSIG:"):
            return signed.digest(), raw[5:].decode("latin-1").strip(), lines
        signed.update(raw + b"\n")
        lines.append(raw.decode("latin-1").rstrip("\r"))
    return signed.digest(), None, lines


def _check_info(container: Container, members: list[Member], keys: ClamAVKeys) -> None:
    infos = [m for m in members if m.kind == "info"]
    if len(infos) != 1:
        raise BadSignature(
            f"the archive must hold one .info member (ClamAV's signed list), found {len(infos)}"
        )
    info = infos[0]
    digest, dsig, lines = _info_lines(info.data)
    if dsig is None:
        raise BadSignature(f"{info.name} has no digital signature (DSIG line)")
    versig2(digest, dsig, keys.info)
    listed: dict[str, tuple[int, str]] = {}
    info_header: Header | None = None
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("ClamAV-VDB:"):
            info_header = parse_header_line(text)
            continue
        parts = text.split(":")
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[2]) != 64:
            raise BadArchive(f"{info.name}:{number}: expected name:size:sha256")
        listed[parts[0]] = (int(parts[1]), parts[2].lower())
    head = container.header
    if info_header is None or (
        (info_header.version, info_header.sigs, info_header.flevel, info_header.stime)
        != (head.version, head.sigs, head.flevel, head.stime)
    ):
        raise BadHeader(f"the container header does not agree with {info.name} (corrupted)")
    for member in members:
        if member.kind in _NOT_CONTENT:
            continue
        entry = listed.get(member.name)
        if entry is None:
            raise BadSignature(f"member {member.name} is not listed in {info.name}")
        size, sha = entry
        if size != len(member.data) or hashlib.sha256(member.data).hexdigest() != sha:
            raise BadSignature(f"member {member.name} does not match {info.name}'s checksum")
    container.info_name = info.name


def parse(data: bytes, file_format: str, keys: ClamAVKeys = CLAMAV_KEYS) -> Container:
    """Verify and unpack a container; ``file_format`` is ``cvd`` or ``cld`` (the file's
    extension, as libclamav decides by it)."""
    if file_format not in ("cvd", "cld"):
        raise BadHeader(f"unknown ClamAV container format {file_format!r} (cvd or cld)")
    header = parse_header(data)
    body = data[HEADER_SIZE:]
    if not body:
        raise Truncated("the container holds a header and no archive")
    if file_format == "cvd":
        md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
        if md5 != header.md5:
            raise Md5Mismatch(
                f"the archive's MD5 {md5} differs from the header's {header.md5!r}"
                " (truncated or altered)"
            )
        versig(md5, header.dsig, keys.cvd)
    # libclamav tells the two apart by content too: an uncompressed archive starts "COPYING".
    tar_bytes = body if body[:2] != b"\x1f\x8b" else _inflate(body)
    members = _members(tar_bytes)
    container = Container(header=header, format=file_format)
    _check_info(container, members, keys)
    for member in members:
        kind = member.kind
        if kind in USED_KINDS:
            container.members.append(member)
        elif kind not in _NOT_CONTENT:
            container.skipped[kind] = container.skipped.get(kind, 0) + member.records
    return container


def format_of(filename: str) -> str:
    """``cvd`` or ``cld`` from a file name; BadHeader for anything else."""
    kind = kind_of(filename)
    if kind not in ("cvd", "cld"):
        raise BadHeader(f"{filename}: a ClamAV container ends in .cvd or .cld")
    return kind


# -- building (tests, and anyone re-packaging their own signatures) ----------------------------


@dataclass(frozen=True)
class RSAPrivateKey:
    n: int
    e: int
    d: int

    @property
    def public(self) -> RSAPublicKey:
        return RSAPublicKey(self.n, self.e)


def sign_md5(md5_hex: str, key: RSAPrivateKey) -> str:
    return encode_number(pow(int(md5_hex, 16), key.d, key.n))


def sign_pss(sha256: bytes, key: RSAPrivateKey, salt: bytes) -> str:
    if len(salt) != PSS_SALT or key.n.bit_length() != 8 * PSS_SIZE:
        raise ValueError("PSS signing needs a 32-byte salt and a 2048-bit key")
    block = PSS_SIZE - 32 - 1
    digest = hashlib.sha256(b"\0" * 8 + sha256 + salt).digest()
    db = b"\0" * (block - PSS_SALT - 1) + b"\1" + salt
    masked = bytearray(a ^ b for a, b in zip(db, _mgf1(digest, block), strict=True))
    masked[0] &= 0x7F
    em = bytes(masked) + digest + b"\xbc"
    return encode_number(pow(int.from_bytes(em, "big"), key.d, key.n))


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build(
    name: str,
    files: dict[str, bytes],
    cvd_key: RSAPrivateKey,
    info_key: RSAPrivateKey,
    *,
    version: int = 1,
    flevel: int = 90,
    stime: int = 1764633600,
    build_time: str = "02 Dec 2025 00-00 +0000",
    builder: str = "garrison",
    compressed: bool = True,
    salt: bytes = b"\x5a" * PSS_SALT,
) -> bytes:
    """A ``.cvd`` (compressed) or ``.cld`` (not) holding ``files`` and a signed
    ``<name>.info``, in ClamAV's layout."""
    sigs = sum(count_records(data) for data in files.values())
    head_fields = [str(version), str(sigs), str(flevel)]
    info_head = f"ClamAV-VDB:{build_time}:{':'.join(head_fields)}:x:x:{builder}:{stime}\n"
    lines = [info_head]
    for member, data in files.items():
        lines.append(f"{member}:{len(data)}:{hashlib.sha256(data).hexdigest()}\n")
    signed = "".join(lines).encode()
    info = signed + f"DSIG:{sign_pss(hashlib.sha256(signed).digest(), info_key, salt)}\n".encode()
    entries = [("COPYING", b"ClamAV test database\n"), (f"{name}.info", info), *files.items()]
    tar_bytes = _tar(entries)
    body = gzip.compress(tar_bytes, mtime=0) if compressed else tar_bytes
    md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
    dsig = sign_md5(md5, cvd_key)
    header = f"ClamAV-VDB:{build_time}:{':'.join(head_fields)}:{md5}:{dsig}:{builder}:{stime}"
    raw = header.encode("latin-1")
    if len(raw) > HEADER_SIZE:
        raise ValueError("header longer than 512 bytes")
    return raw.ljust(HEADER_SIZE, b" ") + body
