"""Keep the event-pipeline tests quick: every test starts a server, and the bootstrap
admin's password hash (argon2 at its production cost) would otherwise be a third of each
test's time.  Password hashing is not what these tests are about."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from garrison.server.users import service as users


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
