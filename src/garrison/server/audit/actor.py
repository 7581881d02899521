"""Who makes a change: every slice's use cases take one, and the audit log records it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """An admin API user, a procedure, or the server itself."""

    username: str
    role: str
    address: str = ""
    user_id: int | None = None


SYSTEM = Actor(username="system", role="admin")
