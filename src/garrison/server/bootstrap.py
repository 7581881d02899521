"""First start: schema migrations, the ``admin`` user, its token file, a first enrollment key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from garrison.server.audit.actor import SYSTEM
from garrison.server.enrollment import service as enrollment
from garrison.server.store import migrate
from garrison.server.store.engine import Database
from garrison.server.users import service as users

FIRST_KEY_USES = 100
FIRST_KEY_SECONDS = 7 * 86400


@dataclass(frozen=True)
class FirstStart:
    admin_password: str
    token_path: Path
    enrollment_key: str


def write_secret(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 from the start: the secret is never world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def prepare(db: Database, data_dir: Path) -> FirstStart | None:
    """Migrate, then on an empty database create the admin and a first key (exactly once,
    even with several nodes starting together)."""
    migrate.upgrade(db.url)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with db.transaction() as session:
            created = users.bootstrap_admin(session)
            if created is None:
                return None
            password, token = created
            key = enrollment.create_key(
                session, SYSTEM, FIRST_KEY_USES, FIRST_KEY_SECONDS, "created at first start"
            )
            key_text = key.key
    except IntegrityError:
        return None  # another node bootstrapped first
    token_path = data_dir / "admin.token"
    write_secret(token_path, token)
    return FirstStart(admin_password=password, token_path=token_path, enrollment_key=key_text)
