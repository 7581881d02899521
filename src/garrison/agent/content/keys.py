"""The content keys this agent trusts, kept in the state dir (``content-keys.json``, 0600).

A key becomes trusted in two ways only: the enrollment answer (``content_keys``, with the
server's ``server_id``), or a rotation statement signed by a key already trusted and not
expired.  A statement also sets when its old key stops being accepted
(``old_key_valid_until``); an expiry only ever moves earlier.  An agent that stayed away past
the whole overlap cannot walk to the new key (its old one has expired): it must be enrolled
again.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from garrison.agent.content import wire
from garrison.agent.content.errors import ContentRefused
from garrison.agent.errors import ServerError
from garrison.agent.state import StateDir

FILE = "content-keys.json"


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class TrustedKey:
    key_id: str
    public_key: bytes  # raw 32 bytes
    valid_until: dt.datetime | None = None  # None: no rotation has retired it yet
    source: str = "enrollment"

    def expired(self, now: dt.datetime) -> bool:
        return self.valid_until is not None and now > self.valid_until

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "public_key": base64.b64encode(self.public_key).decode("ascii"),
            "valid_until": _iso(self.valid_until) if self.valid_until else None,
            "source": self.source,
        }


def _public_key(value: Any, kid: Any, what: str) -> tuple[str, bytes]:
    raw = wire.b64decode(value, f"{what}'s public key")
    if len(raw) != 32:
        raise ContentRefused(f"{what}'s public key is {len(raw)} bytes, not 32")
    if not isinstance(kid, str) or kid != wire.key_id(raw):
        raise ContentRefused(f"{what}'s key_id {str(kid)[:20]!r} is not its key's id")
    return kid, raw


@dataclass
class TrustStore:
    server_id: str = ""
    keys: dict[str, TrustedKey] = field(default_factory=dict)

    # -- persistence ---------------------------------------------------------------------------

    @classmethod
    def load(cls, state: StateDir) -> TrustStore:
        data = state.read_json(state.path / FILE, None)
        store = cls()
        if not isinstance(data, dict):
            return store
        store.server_id = str(data.get("server_id") or "")
        for item in data.get("keys") or []:
            try:
                kid, raw = _public_key(item.get("public_key"), item.get("key_id"), "a pinned key")
                until = item.get("valid_until")
                store.keys[kid] = TrustedKey(
                    kid,
                    raw,
                    wire.parse_time(until, "valid_until") if until else None,
                    str(item.get("source") or "enrollment"),
                )
            except (ContentRefused, AttributeError):
                continue  # a damaged entry is not trusted; the others still are
        return store

    def save(self, state: StateDir) -> None:
        state.write_json(
            state.path / FILE,
            {
                "server_id": self.server_id,
                "keys": [k.to_json() for k in sorted(self.keys.values(), key=lambda k: k.key_id)],
            },
        )

    # -- enrollment ----------------------------------------------------------------------------

    def pin(self, server_id: str, content_keys: Iterable[Any]) -> None:
        """What the enrollment answer names replaces the pinned set (enrollment is where
        trust starts); an expiry already learned for the same key is kept."""
        pinned: dict[str, TrustedKey] = {}
        for item in content_keys:
            if not isinstance(item, dict):
                raise ContentRefused("a content key in the enrollment answer is not an object")
            kid, raw = _public_key(item.get("public_key"), item.get("key_id"), "a content key")
            known = self.keys.get(kid) if server_id == self.server_id else None
            pinned[kid] = TrustedKey(kid, raw, known.valid_until if known else None)
        self.server_id = server_id
        self.keys = pinned

    # -- rotation ------------------------------------------------------------------------------

    def walk(self, rotations: Iterable[Any], now: dt.datetime) -> list[str]:
        """Apply the rotation statements (oldest first) a trusted, unexpired key signed; one
        signed by a key this agent never trusted is history from before it enrolled and is
        passed over.  A statement whose overlap is already over when the agent sees it
        retires the old key but does not introduce the new one (the old key's word no longer
        counts).  Returns what changed, one line each."""
        changes: list[str] = []
        for index, item in enumerate(rotations):
            where = f"rotation statement {index}"
            if not isinstance(item, dict) or not isinstance(item.get("statement"), dict):
                raise ContentRefused(f"{where} is not a signed statement")
            statement: dict[str, Any] = item["statement"]
            old = statement.get("old_key_id")
            signer = self.keys.get(old) if isinstance(old, str) else None
            if signer is None or signer.expired(now):
                continue
            signature = wire.b64decode(item.get("signature"), f"{where}'s signature")
            if not signer.verify(signature, wire.canonical(statement)):
                raise ContentRefused(f"{where} ({old} to a new key): the signature does not verify")
            if statement.get("type") != wire.ROTATION:
                raise ContentRefused(f"{where}: type is not {wire.ROTATION}")
            new_id, raw = _public_key(
                statement.get("new_public_key"), statement.get("new_key_id"), where
            )
            until = wire.parse_time(statement.get("old_key_valid_until"), f"{where}'s expiry")
            if signer.valid_until is None or until < signer.valid_until:
                signer.valid_until = until
                changes.append(f"key {old} accepted until {_iso(until)}")
            if now > until:
                continue  # over before this agent saw it: the new key is not learnt this way
            if new_id not in self.keys:
                self.keys[new_id] = TrustedKey(new_id, raw, None, f"rotation from {old}")
                changes.append(f"key {new_id} trusted (rotation signed by {old})")
        return changes

    # -- checking ------------------------------------------------------------------------------

    def verify(self, kid: str, signature: bytes, data: bytes, now: dt.datetime) -> None:
        key = self.keys.get(kid)
        if key is None:
            pinned = ", ".join(sorted(self.keys)) or "none: enroll again"
            raise ContentRefused(
                f"signed by key {kid}, which this agent does not trust (trusted: {pinned})"
            )
        if key.expired(now):
            raise ContentRefused(
                f"signed by key {kid}, which expired at {_iso(key.valid_until or now)}"
            )
        if not key.verify(signature, data):
            raise ContentRefused(f"the manifest's signature does not verify with key {kid}")


def pin_from_enrollment(state: StateDir, answer: Any) -> int:
    """Pin the enrollment answer's content keys; the number pinned (0: an older server,
    or an Armadito-shaped answer, without them: nothing changes)."""
    if not isinstance(answer, dict) or "content_keys" not in answer:
        return 0
    keys, server_id = answer.get("content_keys"), answer.get("server_id")
    if not isinstance(keys, list) or not isinstance(server_id, str) or not server_id:
        raise ServerError("enrollment: the server's content_keys or server_id are malformed")
    store = TrustStore.load(state)
    try:
        store.pin(server_id, keys)
    except ContentRefused as exc:
        raise ServerError(f"enrollment: {exc.message}") from None
    store.save(state)
    return len(store.keys)
