"""Enrollment keys are stored hashed, shown in full once, and the data dir is private
(docs/security.md, "Secrets and confinement")."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import stat
from pathlib import Path

import httpx
from sqlalchemy import text

from garrison.server.store import migrate
from garrison.server.store.engine import Database
from tests.conftest import Server, ServerFactory
from tests.live import start_server
from tests.security.test_secrets_at_rest import column, database_dump
from tests.server.test_migrations import empty_url  # noqa: F401 (a fixture)
from tests.support import ArmaditoAgent, assert_json_error, wait_for

KEY_RE = re.compile(r"^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$")


def test_keys_are_shown_once_and_stored_as_digests(server: Server) -> None:
    created = server.admin.post("/enrollment-keys", {"uses": 2})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert KEY_RE.match(key), key
    assert created.json()["prefix"] == key[:5]

    listed = server.admin.get("/enrollment-keys").json()
    mine = [k for k in listed if k["id"] == created.json()["id"]]
    assert len(mine) == 1
    assert mine[0]["key"] is None
    assert mine[0]["prefix"] == key[:5]
    assert key not in server.admin.get("/enrollment-keys").text

    dump = database_dump(server)
    assert key not in dump
    assert key.replace("-", "") not in dump
    assert key[6:] not in dump  # nothing past the prefix
    digests = column(server, "SELECT key_hash FROM enrollment_keys")
    assert hashlib.sha256(key.encode()).hexdigest() in digests

    # The key enrolls, in any case, and is revoked by its text or its id.
    assert ArmaditoAgent(server.client).enroll(key.lower()).status_code == 200
    revoked = server.admin.delete(f"/enrollment-keys/{key}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["key"] is None
    assert ArmaditoAgent(server.client).enroll(key).status_code != 200
    again = server.admin.delete(f"/enrollment-keys/{created.json()['id']}")
    assert_json_error(again, 409)
    # The audit log names the key by its prefix only.
    audit = server.admin.get("/audit", limit=100).text
    assert key not in audit


def test_the_first_start_key_is_hashed_too(server: Server) -> None:
    assert KEY_RE.match(server.first_key)
    assert server.first_key not in database_dump(server)
    assert server.enrolled_agent().token


def test_existing_keys_are_hashed_by_the_migration(empty_url: str) -> None:  # noqa: F811
    migrate.upgrade(empty_url, "0006")
    key = "ABCDE-12345-FGHIJ-67890-KLMNO"
    now = dt.datetime.now(dt.UTC)
    db = Database(empty_url)
    try:
        with db.transaction() as session:
            session.execute(
                text(
                    "INSERT INTO enrollment_keys (key, uses_total, uses_count, expires_at,"
                    " description, created_at, created_by) VALUES"
                    " (:k, 5, 1, :e, 'old', :n, 'admin')"
                ),
                {"k": key, "e": now + dt.timedelta(days=1), "n": now},
            )
        migrate.upgrade(empty_url)
        with db.reading() as session:
            rows = session.execute(
                text("SELECT key_hash, key_prefix, uses_count FROM enrollment_keys")
            ).all()
        assert [tuple(r) for r in rows] == [(hashlib.sha256(key.encode()).hexdigest(), "ABCDE", 1)]
        from garrison.server.enrollment import service

        with db.transaction() as session:
            assert service.consume(session, key.lower()).uses_count == 2
    finally:
        db.dispose()


def modes(data_dir: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(data_dir.stat().st_mode)}
    for path in data_dir.rglob("*"):
        found[str(path.relative_to(data_dir))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_an_older_data_dir_is_made_private(server_factory: ServerFactory, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    (data_dir / "server.url").write_text("http://127.0.0.1:1\n")
    (data_dir / "server.url").chmod(0o644)
    (data_dir / "export").mkdir()
    (data_dir / "export" / "old.ndjson").write_text("{}\n")
    server_factory()
    found = modes(data_dir)
    assert found.pop(".") == 0o700
    assert found.pop("export") == 0o700
    # Directories the server makes itself (run/ for the workers' shared counter): private too.
    for name in [name for name in found if (data_dir / name).is_dir()]:
        assert found.pop(name) == 0o700, name
    assert set(found.values()) == {0o600}, found


def test_a_real_server_keeps_every_file_of_its_data_dir_private(tmp_path: Path) -> None:
    """``garrison serve``: the data dir 0700; the database, its WAL and SHM, admin.token,
    server.url, secrets.key and exported files 0600; and the first start's banner key
    enrolls."""
    data_dir = tmp_path / "data"
    live = start_server(data_dir)
    try:
        auth = {"Authorization": f"Bearer {live.token}"}
        body = {
            "name": "file",
            "format": "eset-json",
            "transport": "file",
            "path": "siem/events.ndjson",
        }
        created = httpx.post(f"{live.url}/admin/v1/export-targets", json=body, headers=auth)
        assert created.status_code == 201, created.text
        sent = httpx.post(
            f"{live.url}/admin/v1/export-targets/{created.json()['id']}/test", headers=auth
        )
        assert sent.status_code == 200, sent.text
        banner = wait_for(
            lambda: live.log_path.read_text(),
            lambda out: "enrollment key" in out,
            timeout=10,
            what="the first-start banner",
        )
        [key] = re.findall(r"enrollment key \(100 uses, 7 days\): ([A-Z0-9-]{29})", banner)
        with httpx.Client(base_url=live.url) as client:
            assert ArmaditoAgent(client).enroll(key).status_code == 200
        found = modes(data_dir)
    finally:
        live.stop()
    assert {"garrison.db", "garrison.db-wal", "admin.token", "server.url", "secrets.key"} <= set(
        found
    ), found
    assert "export/siem/events.ndjson" in found, found
    dirs = {name for name in found if (data_dir / name).is_dir()}
    assert {found[name] for name in dirs} == {0o700}, found
    assert {mode for name, mode in found.items() if name not in dirs} == {0o600}, found
