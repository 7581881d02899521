"""What a use case needs of the store: somewhere to open its one transaction.

Edges hand a use case the :class:`~garrison.server.store.engine.Database`, and it commits
on its own.  Code that already runs inside a transaction (a procedure's host call, which the
procedure's savepoint must be able to undo) hands it :class:`Joined` instead: the use case
then adds its rows to that transaction, and the signals it raises fire when that outer
transaction commits, never before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from sqlalchemy.orm import Session


class Transactions(Protocol):
    def transaction(self) -> AbstractContextManager[Session]: ...


class Joined:
    """The transaction already open on ``session``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        yield self.session
