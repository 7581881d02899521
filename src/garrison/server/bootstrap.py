"""First start: schema migrations, the ``admin`` user, its token file, a first enrollment key;
at every start: a private data dir, the secrets key and the content signing key, secrets of
older versions sealed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from garrison.server.content.signing import KeyRing
from garrison.server.export import actions as exports
from garrison.server.export.secrets import SecretBox
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
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def secure_data_dir(data_dir: Path) -> None:
    """The data dir 0700, every directory in it 0700 and every file 0600 (the SQLite
    database and its WAL and SHM files, ``admin.token``, ``server.url``, ``secrets.key``,
    exported files): a data dir made by an older version (0755, files 0644) is closed too.
    Symbolic links are neither followed nor changed."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    for root, dirs, files in os.walk(data_dir, followlinks=False):
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def prepare(db: Database, data_dir: Path, key_file: Path | None = None) -> FirstStart | None:
    """Migrate, then on an empty database create the admin and a first key (exactly once,
    even with several nodes starting together).  ``key_file``: the secrets key (made at the
    first start; default ``<data_dir>/secrets.key``).  Raises DatabaseUnreachableError when
    the database cannot be reached."""
    secure_data_dir(data_dir)
    migrate.upgrade(db.url)
    secure_data_dir(data_dir)  # the SQLite files migrate created; WAL and SHM take their mode
    box = SecretBox.load_or_create(key_file or data_dir / "secrets.key")
    KeyRing.load_or_create(data_dir)  # the content signing key, content-key.pem (0600)
    with reporting_unreachable():
        exports.seal_clear_secrets(db, box)
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
