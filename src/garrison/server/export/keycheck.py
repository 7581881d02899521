"""Nodes sharing a database must share the secrets key: each node seals with its own
``secrets.key``, so a node with another key could not open what the first sealed (an export
target's credentials would fail at send time, on that node only).  The first node to start
seals a check value into the database; every later start opens it, and a node whose key
cannot is refused at start with the reason, before it serves anything."""

from __future__ import annotations

from sqlalchemy import select

from garrison.server.errors import ConflictError
from garrison.server.export.secrets import SecretBox, SecretsUnreadableError
from garrison.server.options.models import Option
from garrison.server.store.base import utcnow
from garrison.server.store.unit import Transactions
from garrison.server.store.upsert import insert_ignore

KEY = "secrets.key_check"  # an options row no setting is named like (options ignores it)
PLAINTEXT = "garrison secrets key check"


class SecretsKeyMismatchError(ConflictError):
    """This node's secrets key is not the one the database's secrets were sealed with."""


def check_secrets_key(db: Transactions, box: SecretBox, key_file: str) -> None:
    """Seal the check value on the first start; on every start, make sure this node's key
    opens it.  Raises SecretsKeyMismatchError naming the key file."""
    with db.transaction() as session:
        insert_ignore(
            session,
            Option.__table__,  # type: ignore[arg-type]
            {"key": KEY, "value": box.seal(PLAINTEXT), "updated_at": utcnow()},
        )
        sealed = session.scalar(select(Option.value).where(Option.key == KEY))
    try:
        opened = box.open(sealed) if isinstance(sealed, str) else None
    except SecretsUnreadableError:
        opened = None
    if opened != PLAINTEXT:
        raise SecretsKeyMismatchError(
            f"{key_file} is not the secrets key this database was set up with: every node "
            "sharing a database must use the same key (copy the first node's file, or point "
            "GARRISON_SECRETS_KEY_FILE at it)"
        )
