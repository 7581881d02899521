"""Export-target secrets: which option values are secret, and their encryption at rest.

A webhook's credentials (``Authorization: Bearer …``, an API-key header) are write-only:
the admin API shows ``"(set)"`` in their place, and the database holds them encrypted
(Fernet: AES-128-CBC with HMAC-SHA256) with a key kept in a file of the data dir, not in
the database, so a copy of the database or a viewer's read does not give the SIEM's
credentials away.

A header is secret when its name is ``Authorization``, ``Proxy-Authorization`` or
``Cookie``, or contains ``token``, ``key``, ``secret``, ``pass``, ``auth``, ``session``,
``signature`` or ``credential`` (any case: ``X-Api-Key``, ``X-Auth-Token``,
``DD-API-KEY``…).  Credentials in a URL (``user:password@``, or a query parameter with
such a name) are refused: they belong in a header.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

# What the API shows in place of a secret value, and what an update may send to keep it.
SET = "(set)"

_SECRET_NAME = re.compile(
    r"^(authorization|proxy-authorization|cookie)$"
    r"|token|key|secret|pass|auth|session|signature|credential",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    return _SECRET_NAME.search(name.strip()) is not None


class SecretsUnreadableError(Exception):
    """A sealed value this node's key cannot open (another node's key, or a changed file)."""


class SecretBox:
    """Seals and opens secret values with the key in ``secrets.key``."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def load_or_create(cls, path: Path) -> SecretBox:
        """The key in ``path``; a new one, written with mode 0600 from the start, when the
        file does not exist (its directory made 0700 if missing: a server built without
        the start-up preparation, e.g. to read its OpenAPI document, still has a key).  Raises
        ValueError when the file holds no valid key."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            text = path.read_bytes().strip()
            try:
                return cls(text)
            except ValueError:
                raise ValueError(f"{path} does not hold a valid secrets key") from None
        key = Fernet.generate_key()
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        return cls(key)

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError):
            raise SecretsUnreadableError(
                "this node's secrets key cannot decrypt the target's secrets "
                "(nodes sharing a database must share GARRISON_SECRETS_KEY_FILE)"
            ) from None
