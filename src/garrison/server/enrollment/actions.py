"""Administrative actions on enrollment keys."""

from __future__ import annotations

from garrison.server.audit.actor import Actor
from garrison.server.enrollment import service as enrollment
from garrison.server.enrollment.models import EnrollmentKey
from garrison.server.store.unit import Transactions


def create_key(
    db: Transactions, actor: Actor, uses: int, expires_in: int, description: str = ""
) -> tuple[EnrollmentKey, str]:
    """The key and its text: shown once, never stored."""
    with db.transaction() as session:
        return enrollment.create_key(session, actor, uses, expires_in, description)


def revoke_key(db: Transactions, actor: Actor, ref: str) -> EnrollmentKey:
    """``ref``: the key's id or its text."""
    with db.transaction() as session:
        return enrollment.revoke_key(session, actor, ref)
