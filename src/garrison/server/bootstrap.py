"""First start: schema migrations, the ``admin`` user, its token file, a first enrollment key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from garrison.server.store import migrate
from garrison.server.store.engine import Database, reporting_unreachable
from garrison.server.users import actions as users


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
    even with several nodes starting together).  Raises DatabaseUnreachableError when the
    database cannot be reached."""
    migrate.upgrade(db.url)
    data_dir.mkdir(parents=True, exist_ok=True)
    with reporting_unreachable():
        created = users.bootstrap(db)
    if created is None:
        return None
    token_path = data_dir / "admin.token"
    write_secret(token_path, created.admin_token)
    return FirstStart(
        admin_password=created.admin_password,
        token_path=token_path,
        enrollment_key=created.enrollment_key,
    )


def new_admin_token(db: Database, data_dir: Path, username: str = "admin") -> Path:
    """Replace ``username``'s admin.token (revoked by a role change, lost, or leaked) and
    write it to ``<data_dir>/admin.token``; the way back in for an operator on the host.
    Raises NotFoundError or ConflictError when ``username`` is no active admin, and
    DatabaseUnreachableError."""
    migrate.upgrade(db.url)
    with reporting_unreachable():
        token = users.reissue_admin_token(db, username)
    token_path = data_dir / "admin.token"
    write_secret(token_path, token)
    return token_path
