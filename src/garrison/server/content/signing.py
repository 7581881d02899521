"""Ed25519 signing of content: canonical JSON, key ids, the key files of the data dir.

``content-key.pem`` (PKCS8 PEM, mode 0600) is the current private key, made at the first
start; a rotation keeps the old one as ``content-key-<key_id>.pem`` until its overlap ends.
Nodes sharing a database must share these files (like ``secrets.key``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

KEY_FILE = "content-key.pem"


def canonical(value: Any) -> bytes:
    """The bytes every signature and manifest hash is computed over (CONTENT-WIRE.md)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: bytes) -> str:
    """The first 16 hex digits of SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(public).hexdigest()[:16]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sign(key: Ed25519PrivateKey, value: Any) -> str:
    return b64(key.sign(canonical(value)))


def verify(public_b64: str, signature_b64: str, value: Any) -> bool:
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
        public.verify(base64.b64decode(signature_b64, validate=True), canonical(value))
    except (InvalidSignature, ValueError):
        return False
    return True


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_new(path: Path, data: bytes) -> None:
    """Write ``path`` (0600 from the start) through a temporary file, then rename."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _read(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError:
        raise ValueError(f"{path} does not hold a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


class KeyRing:
    """This node's content private keys, by key id: the current one and the rotated ones
    kept for their overlap."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._keys: dict[str, Ed25519PrivateKey] = {}
        self.current_id = ""

    @classmethod
    def load_or_create(cls, directory: Path) -> KeyRing:
        """The keys in ``directory``; a new ``content-key.pem`` when there is none."""
        ring = cls(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / KEY_FILE
        if not path.exists():
            _write_new(path, _pem(Ed25519PrivateKey.generate()))
        ring.reload()
        return ring

    def reload(self) -> None:
        with self._lock:
            current = _read(self.directory / KEY_FILE)
            keys = {key_id(raw_public(current.public_key())): current}
            for old in sorted(self.directory.glob("content-key-*.pem")):
                try:
                    key = _read(old)
                except ValueError:
                    continue
                keys[key_id(raw_public(key.public_key()))] = key
            self._keys = keys
            self.current_id = key_id(raw_public(current.public_key()))

    def get(self, wanted: str) -> Ed25519PrivateKey | None:
        found = self._keys.get(wanted)
        if found is None:
            # Another node may have rotated: its files are shared.
            self.reload()
            found = self._keys.get(wanted)
        return found

    def public_b64(self, wanted: str) -> str | None:
        key = self.get(wanted)
        return b64(raw_public(key.public_key())) if key is not None else None

    def rotate(self) -> tuple[str, str]:
        """Make a new current key; the old one moves to ``content-key-<id>.pem``.
        Returns (old key id, new key id)."""
        with self._lock:
            path = self.directory / KEY_FILE
            old = _read(path)
            old_id = key_id(raw_public(old.public_key()))
            _write_new(self.directory / f"content-key-{old_id}.pem", _pem(old))
            new = Ed25519PrivateKey.generate()
            _write_new(path, _pem(new))
        self.reload()
        return old_id, self.current_id

    def undo_rotation(self, old_id: str) -> None:
        """Put ``old_id`` back as the current key (its rotation could not be recorded)."""
        kept = self.directory / f"content-key-{old_id}.pem"
        if kept.exists():
            os.replace(kept, self.directory / KEY_FILE)
        self.reload()

    def forget(self, old_id: str) -> None:
        """Delete a rotated key's file once its overlap is over."""
        if old_id == self.current_id:
            return
        path = self.directory / f"content-key-{old_id}.pem"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with self._lock:
            self._keys.pop(old_id, None)
