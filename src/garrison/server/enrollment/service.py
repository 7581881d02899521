"""Enrollment keys: CSPRNG-made, with an expiry, a use counter and revocation.

A key is stored as its SHA-256 only (with its first group, to tell keys apart): a copy of
the database does not let anyone enroll.  Unsalted and fast on purpose: a key is 25
characters drawn by ``secrets`` from 36, about 129 bits, so there is no dictionary to
precompute and no brute force to slow down, and an enrollment finds its key with one
indexed lookup by digest instead of trying a slow, salted hash against every key (the
reasoning of agent and admin tokens, ``garrison.common.tokens``).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from garrison.common.tokens import token_hash
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.enrollment.models import EnrollmentKey
from garrison.server.errors import (
    ConflictError,
    EnrollmentRefusedError,
    InvalidInputError,
    NotFoundError,
)
from garrison.server.store.base import utcnow

KEY_RE = re.compile(r"^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
MAX_USES = 1_000_000
MAX_EXPIRY_SECONDS = 10 * 365 * 86400


def generate_key() -> str:
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(5)) for _ in range(5))


def key_digest(normalized: str) -> str:
    """What is stored of a key (already upper-cased and checked)."""
    return token_hash(normalized)


def shown(key: EnrollmentKey) -> str:
    """How a stored key is named in lists, the audit log and messages: its first group."""
    return f"{key.key_prefix}-…"


def create_key(
    session: Session, actor: Actor, uses: int, expires_in: int, description: str = ""
) -> tuple[EnrollmentKey, str]:
    """The stored key and its text, which exists nowhere else once this returns."""
    if not 1 <= uses <= MAX_USES:
        raise InvalidInputError(f"uses must be between 1 and {MAX_USES}", field="uses")
    if not 60 <= expires_in <= MAX_EXPIRY_SECONDS:
        raise InvalidInputError(
            f"expires_in must be between 60 and {MAX_EXPIRY_SECONDS} seconds", field="expires_in"
        )
    text = generate_key()
    key = EnrollmentKey(
        key_hash=key_digest(text),
        key_prefix=text[:5],
        uses_total=uses,
        expires_at=utcnow() + dt.timedelta(seconds=expires_in),
        description=description[:255],
        created_by=actor.username,
    )
    session.add(key)
    session.flush()
    audit.record(
        session, actor, "enrollment_key.create", shown(key), uses=uses, expires_in=expires_in
    )
    return key, text


def list_keys(session: Session, *, include_inactive: bool = True) -> list[EnrollmentKey]:
    query = select(EnrollmentKey).order_by(EnrollmentKey.id.desc())
    if not include_inactive:
        now = utcnow()
        query = query.where(
            EnrollmentKey.revoked_at.is_(None),
            EnrollmentKey.expires_at > now,
            EnrollmentKey.uses_count < EnrollmentKey.uses_total,
        )
    return list(session.scalars(query))


def key_status(key: EnrollmentKey, now: dt.datetime | None = None) -> str:
    now = now or utcnow()
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at <= now:
        return "expired"
    if key.uses_count >= key.uses_total:
        return "exhausted"
    return "active"


def find_key(session: Session, ref: str) -> EnrollmentKey:
    """By id, or by the key's full text."""
    query = select(EnrollmentKey)
    query = (
        query.where(EnrollmentKey.id == int(ref))
        # ASCII digits only ("²".isdigit() holds, int() refuses it) and no larger than an
        # id column holds (32-bit on PostgreSQL): anything else is looked up as key text.
        if ref.isascii() and ref.isdigit() and len(ref) <= 10 and int(ref) < 2**31
        else query.where(EnrollmentKey.key_hash == key_digest(ref.strip().upper()))
    )
    key = session.scalar(query)
    if key is None:
        raise NotFoundError(f"no enrollment key {ref!r}")
    return key


def revoke_key(session: Session, actor: Actor, ref: str) -> EnrollmentKey:
    key = find_key(session, ref)
    if key.revoked_at is not None:
        raise ConflictError(f"key {shown(key)} is already revoked")
    key.revoked_at = utcnow()
    audit.record(session, actor, "enrollment_key.revoke", shown(key))
    return key


def _refusal(key: EnrollmentKey, now: dt.datetime) -> EnrollmentRefusedError:
    status = key_status(key, now)
    return EnrollmentRefusedError(
        {
            "revoked": "enrollment key has been revoked",
            "expired": "enrollment key has expired",
            "exhausted": "enrollment key has no uses left",
        }.get(status, "enrollment key refused"),
        field="key",
    )


def _digest(text: str) -> str:
    candidate = text.strip().upper()
    if not KEY_RE.match(candidate):
        raise EnrollmentRefusedError(
            "invalid enrollment key format (expected XXXXX-XXXXX-XXXXX-XXXXX-XXXXX)", field="key"
        )
    return key_digest(candidate)


def check(session: Session, text: str) -> EnrollmentKey:
    """The key, if it may be used now; says why not otherwise.  Uses nothing."""
    digest = _digest(text)
    key = session.scalar(select(EnrollmentKey).where(EnrollmentKey.key_hash == digest))
    if key is None:
        raise EnrollmentRefusedError("unknown enrollment key", field="key")
    if key_status(key) != "active":
        raise _refusal(key, utcnow())
    return key


def consume(session: Session, text: str) -> EnrollmentKey:
    """Use one enrollment of a key, atomically, or say exactly why it is refused."""
    digest = _digest(text)
    now = utcnow()
    # One conditional UPDATE: two agents racing for the last use cannot both win.
    result = session.execute(
        update(EnrollmentKey)
        .where(
            EnrollmentKey.key_hash == digest,
            EnrollmentKey.revoked_at.is_(None),
            EnrollmentKey.expires_at > now,
            EnrollmentKey.uses_count < EnrollmentKey.uses_total,
        )
        .values(uses_count=EnrollmentKey.uses_count + 1)
        .execution_options(synchronize_session=False)
    )
    key = session.scalar(select(EnrollmentKey).where(EnrollmentKey.key_hash == digest))
    if key is None:
        raise EnrollmentRefusedError("unknown enrollment key", field="key")
    # The key may already be in this session (check() loaded it): read its counters afresh.
    session.refresh(key)
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return key
    raise _refusal(key, now)
