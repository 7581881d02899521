"""The shapes of CONTENT-WIRE.md: ``canonical()``, key ids, the signed envelope and its
manifest.  Parsing checks the shape only (a file name is a rule set's bundle name, never a
path); whether it is to be trusted is ``verify``'s."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from garrison.agent.content.errors import ContentRefused

FORMAT = 1
# The bundle file extensions per rule set kind (a hashes list is .hsb or .hdb).
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "yara": ("yar",),
    "hashes": ("hsb", "hdb"),
    "ioc": ("ioc",),
    "blocklist": ("blk",),
    "script": ("script",),
    "devices": ("dev",),
    "clamav-body": ("ndb",),
}
# Kinds whose files are lists of lines: the server may send a line delta for them.
LINE_KINDS = frozenset({"hashes", "ioc", "blocklist", "clamav-body"})
NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
KEY_ID = re.compile(r"^[0-9a-f]{16}$")
MAX_FILES = 1000
MAX_FILE_SIZE = 1 << 30  # a million hashes is ~100 MB; a GiB leaves room, not a disk's worth
ROTATION = "key-rotation"


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def manifest_sha256(manifest: Any) -> str:
    return hashlib.sha256(canonical(manifest)).hexdigest()


def key_id(raw_public_key: bytes) -> str:
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


def b64decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ContentRefused(f"{what} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ContentRefused(f"{what} is not base64") from None


def parse_time(value: Any, what: str) -> dt.datetime:
    """An RFC 3339 time with its offset (the contract's times are UTC)."""
    if not isinstance(value, str):
        raise ContentRefused(f"{what} is not an RFC 3339 time")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ContentRefused(f"{what} is not an RFC 3339 time: {value[:40]!r}") from None
    if when.tzinfo is None:
        raise ContentRefused(f"{what} has no time zone: {value[:40]!r}")
    return when


def _int(value: Any, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ContentRefused(f"{what} must be an integer >= {minimum}")
    return value


@dataclass(frozen=True)
class FileEntry:
    name: str
    ruleset: str
    kind: str
    version: int
    sha256: str
    size: int
    records: int

    @property
    def line_oriented(self) -> bool:
        return self.kind in LINE_KINDS


@dataclass(frozen=True)
class Manifest:
    raw: dict[str, Any]
    sha256: str  # of canonical(raw): what the check-in announces
    server_id: str
    serial: int
    issued: dt.datetime
    station_group: str | None
    allow_unsigned_sources: bool
    files: tuple[FileEntry, ...]

    def file(self, ruleset: str) -> FileEntry | None:
        return next((f for f in self.files if f.ruleset == ruleset), None)


@dataclass(frozen=True)
class Envelope:
    manifest: dict[str, Any]
    signature: bytes
    key_id: str
    rotations: tuple[Any, ...]
    raw: dict[str, Any]


def parse_envelope(body: Any) -> Envelope:
    if not isinstance(body, dict):
        raise ContentRefused("the signed manifest is not a JSON object")
    manifest = body.get("manifest")
    if not isinstance(manifest, dict):
        raise ContentRefused("the envelope has no manifest object")
    signature = b64decode(body.get("signature"), "the manifest's signature")
    kid = body.get("key_id")
    if not isinstance(kid, str) or not KEY_ID.match(kid):
        raise ContentRefused("the envelope's key_id is not 16 hex digits")
    rotations = body.get("rotations", [])
    if not isinstance(rotations, list):
        raise ContentRefused("the envelope's rotations is not an array")
    return Envelope(manifest, signature, kid, tuple(rotations), body)


def _file(item: Any, index: int) -> FileEntry:
    where = f"manifest file {index}"
    if not isinstance(item, dict):
        raise ContentRefused(f"{where} is not an object")
    name, ruleset, kind = item.get("name"), item.get("ruleset"), item.get("kind")
    if not isinstance(ruleset, str) or not NAME.match(ruleset):
        raise ContentRefused(f"{where}: rule set name {str(ruleset)[:80]!r} is not allowed")
    if not isinstance(kind, str) or kind not in EXTENSIONS:
        raise ContentRefused(f"{where} ({ruleset}): unknown kind {str(kind)[:40]!r}")
    allowed = {f"{ruleset}.{ext}" for ext in EXTENSIONS[kind]}
    if name not in allowed:
        raise ContentRefused(
            f"{where} ({ruleset}): file name {str(name)[:80]!r} is not {' or '.join(allowed)}"
        )
    sha = item.get("sha256")
    if not isinstance(sha, str) or not HEX64.match(sha):
        raise ContentRefused(f"{where} ({ruleset}): sha256 is not 64 lower-case hex digits")
    size = _int(item.get("size"), f"{where} ({ruleset}) size")
    if size > MAX_FILE_SIZE:
        raise ContentRefused(f"{where} ({ruleset}): {size} bytes is above {MAX_FILE_SIZE}")
    return FileEntry(
        name=str(name),
        ruleset=ruleset,
        kind=kind,
        version=_int(item.get("version"), f"{where} ({ruleset}) version", 1),
        sha256=sha,
        size=size,
        records=_int(item.get("records", 0), f"{where} ({ruleset}) records"),
    )


def parse_manifest(raw: dict[str, Any]) -> Manifest:
    if raw.get("format") != FORMAT:
        raise ContentRefused(f"manifest format {str(raw.get('format'))[:20]!r} is not {FORMAT}")
    server_id = raw.get("server_id")
    if not isinstance(server_id, str) or not server_id:
        raise ContentRefused("the manifest has no server_id")
    group = raw.get("station_group")
    if group is not None and not isinstance(group, str):
        raise ContentRefused("the manifest's station_group is not a string")
    policy = raw.get("policy", {})
    if not isinstance(policy, dict):
        raise ContentRefused("the manifest's policy is not an object")
    allow = policy.get("allow_unsigned_sources", False)
    if not isinstance(allow, bool):
        raise ContentRefused("the manifest's policy.allow_unsigned_sources is not a boolean")
    items = raw.get("files")
    if not isinstance(items, list):
        raise ContentRefused("the manifest has no files array")
    if len(items) > MAX_FILES:
        raise ContentRefused(f"the manifest names {len(items)} files, more than {MAX_FILES}")
    files = tuple(_file(item, i) for i, item in enumerate(items))
    names = [f.name for f in files]
    rulesets = [f.ruleset for f in files]
    if len(set(names)) != len(names) or len(set(rulesets)) != len(rulesets):
        raise ContentRefused("the manifest names a file or a rule set twice")
    return Manifest(
        raw=raw,
        sha256=manifest_sha256(raw),
        server_id=server_id,
        serial=_int(raw.get("serial"), "the manifest's serial", 1),
        issued=parse_time(raw.get("issued"), "the manifest's issued time"),
        station_group=group,
        allow_unsigned_sources=allow,
        files=files,
    )


@dataclass(frozen=True)
class Announcement:
    """What a check-in (the Getjobs answer's ``content``) says the station should run."""

    serial: int
    manifest_sha256: str


def parse_announcement(value: Any) -> Announcement | None:
    """None when the answer carries no (usable) ``content`` field: an older server."""
    if not isinstance(value, dict):
        return None
    serial, sha = value.get("serial"), value.get("manifest_sha256")
    if isinstance(serial, bool) or not isinstance(serial, int) or not isinstance(sha, str):
        return None
    if not HEX64.match(sha):
        return None
    return Announcement(serial, sha)
