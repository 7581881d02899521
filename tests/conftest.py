"""Fixtures shared by every test.

``database_url`` is parametrised: SQLite always, PostgreSQL too when
``GARRISON_TEST_DATABASE_URL`` is set (CI sets it).  Each test gets an empty, migrated
database: a fresh SQLite file copied from a migrated template, or emptied PostgreSQL tables
in a database created for this test session.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from garrison.server.app import GarrisonApp, create_app
from garrison.server.bootstrap import prepare
from garrison.server.context import ServerContext
from garrison.server.settings import Settings
from garrison.server.store import migrate
from garrison.server.store.engine import Database, normalize_url
from garrison.server.store.migrations.schema import metadata
from garrison.server.users import service as users
from tests.support import Admin, ArmaditoAgent

PG_URL = os.environ.get("GARRISON_TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def cheap_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process servers hash passwords with argon2id at its lowest cost.  At the production
    cost (64 MiB, three passes) every server's bootstrap admin, every ``Admin.as_role`` user and
    every login took a quarter of a second of CPU each: most of a typical test's time, spent on
    what no test measures.  The hash stays argon2id, so whatever a test proves about stored
    passwords holds; ``@pytest.mark.production_password_hashes`` keeps the production hasher
    for a test that is about the hasher itself.  Real ``garrison serve`` processes
    (tests/live.py) always hash at the production cost."""
    if request.node.get_closest_marker("production_password_hashes"):
        return
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    # The timing equaliser's dummy hash is made on first use: made with the hasher in use.
    monkeypatch.setattr(users, "_dummy", [])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("GARRISON_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    admin_url = normalize_url(PG_URL)
    name = f"garrison_test_{uuid.uuid4().hex[:10]}"
    admin_engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    # No test crashes PostgreSQL itself, so no test needs a commit to wait for its WAL to
    # reach the disk: commits stay atomic and at once visible to every other session, and
    # the many small commits of a test stop waiting for an fsync each.
    with admin_engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    try:
        yield url
    finally:
        with admin_engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()


# What TRUNCATE ... RESTART IDENTITY did, at a sixth of its cost: TRUNCATE gives every table
# new files (~0.15 s for the 26 tables, each PostgreSQL test), while a test leaves a few rows
# that DELETE removes in milliseconds.  Children before parents, for the foreign keys.
EMPTY_TABLES = "; ".join(f'DELETE FROM "{t.name}"' for t in reversed(metadata.sorted_tables))
# Every sequence (the tables' serial and identity columns) back at its start value, so that a
# test sees the ids a fresh database gives.
RESTART_SEQUENCES = (
    "SELECT setval((quote_ident(schemaname) || '.' || quote_ident(sequencename))::regclass,"
    " start_value, false)"
    " FROM pg_sequences WHERE schemaname = current_schema()"
)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "garrison.db"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_session_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(EMPTY_TABLES)
        conn.exec_driver_sql(RESTART_SEQUENCES)
    engine.dispose()
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@dataclass
class Server:
    """An app in-process, with its admin and helpers to make agents."""

    app: GarrisonApp
    client: TestClient
    admin: Admin
    settings: Settings
    db: Database
    first_key: str

    def agent(self, **kwargs: Any) -> ArmaditoAgent:
        return ArmaditoAgent(self.client, **kwargs)

    def enrolled_agent(self, **kwargs: Any) -> ArmaditoAgent:
        agent = self.agent(**kwargs)
        response = agent.enroll(self.first_key)
        assert response.status_code == 200, response.text
        return agent

    @property
    def ctx(self) -> ServerContext:
        ctx: ServerContext = self.app.state.ctx
        return ctx

    def flush_presence(self) -> None:
        self.ctx.presence.flush(self.db)


# A fixture's callable that makes a server with settings overrides: ``server_factory(...)``.
ServerFactory = Callable[..., Server]


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    overrides.setdefault("token_cache_seconds", 0)
    return Settings(data_dir=tmp_path / "data", database_url=database_url, **overrides)


@pytest.fixture
def token_cache_seconds() -> float:
    """The agent token cache time of the servers ``server_factory`` makes: off by default,
    so a test sees the database's answer at once.  See :func:`token_cache_off_and_on`."""
    return 0.0


def token_cache_off_and_on() -> Any:
    """An override of ``token_cache_seconds`` for a test module or directory
    (``token_cache_seconds = token_cache_off_and_on()``): its tests run with the cache off,
    and on at the production default, where a stale cached token shows."""

    @pytest.fixture(
        params=[0.0, Settings.model_fields["token_cache_seconds"].default],
        ids=["token-cache-off", "token-cache-on"],
    )
    def token_cache_seconds(request: pytest.FixtureRequest) -> float:
        return float(request.param)

    return token_cache_seconds


@pytest.fixture
def server_factory(
    tmp_path: Path, database_url: str, token_cache_seconds: float
) -> Iterator[ServerFactory]:
    made: list[tuple[TestClient, Database]] = []

    def make(**overrides: Any) -> Server:
        overrides.setdefault("token_cache_seconds", token_cache_seconds)
        settings = make_settings(tmp_path, database_url, **overrides)
        database = Database(database_url)
        first = prepare(database, settings.data_dir, settings.resolved_secrets_key_file())
        token = (settings.data_dir / "admin.token").read_text().strip()
        app = create_app(settings, database)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        made.append((client, database))
        key = first.enrollment_key if first else Admin(client, token).new_key(uses=1000)
        return Server(
            app=app,
            client=client,
            admin=Admin(client, token),
            settings=settings,
            db=database,
            first_key=key,
        )

    yield make
    for client, database in made:
        client.__exit__(None, None, None)
        database.dispose()


@pytest.fixture
def server(server_factory: ServerFactory) -> Server:
    return server_factory()
