"""The admin CLI against a real server: ``python -m garrison.cli …`` as a subprocess, talking
HTTP to ``garrison serve`` on a free port.  One server for the whole module (each test uses
its own names and stations, so the order of tests does not matter)."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from sqlalchemy import update

from bench.common import free_port
from garrison.server.stations.models import Station
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database
from tests.cli.helpers import Cli, assert_one_line_error, clean_env, enroll, garrison
from tests.live import LiveServer
from tests.support import ArmaditoAgent

KEY_RE = re.compile(r"^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$")


# Enrollment keys --------------------------------------------------------------------------


def test_keys_create_list_revoke(cli: Cli) -> None:
    created = cli.json(
        "keys", "create", "--uses", "3", "--expires-in", "3600", "--description", "[b]cli[/b]"
    )
    assert KEY_RE.match(created["key"])
    assert (created["uses"], created["used"], created["status"]) == (3, 0, "active")
    assert created["description"] == "[b]cli[/b]"

    # Listed by prefix only: keys are stored hashed.
    listed = {k["id"]: k for k in cli.json("keys", "list")}
    assert listed[created["id"]]["key"] is None
    assert listed[created["id"]]["prefix"] == created["key"][:5]
    table = cli("keys", "list")
    assert table.returncode == 0, table.stderr
    assert not table.stdout.lstrip().startswith(("[", "{"))
    assert "status" in table.stdout
    assert created["key"] not in table.stdout
    assert f"{created['key'][:5]}-…" in table.stdout
    assert "[b]cli[/b]" in table.stdout  # server text is shown as is, never as markup

    # The one-line install: whole by the key's text; by id, with XXXXX groups and a note.
    whole = cli("keys", "install-command", created["key"])
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout == (
        f"garrison-agent install --server {cli.live.url} --key {created['key']}\n"
    )
    by_id = cli("keys", "install-command", created["id"])
    assert by_id.stdout.split()[-1] == created["key"][:5] + "-XXXXX" * 4
    assert "replace its XXXXX groups" in by_id.stderr
    assert cli.json("keys", "install-command", created["id"])["key_included"] is False

    revoked = cli.json("keys", "revoke", created["key"])
    assert revoked["id"] == created["id"]
    assert revoked["status"] == "revoked"
    assert created["id"] not in [k["id"] for k in cli.json("keys", "list", "--active")]

    again = assert_one_line_error(cli("keys", "revoke", created["id"]), 1)
    assert "already revoked" in again


# Where the server and the token come from ----------------------------------------------


def test_token_from_the_data_dir_file(live: LiveServer, tmp_path: Path) -> None:
    result = garrison(
        "whoami", "--server", live.url, "--data-dir", str(live.data_dir), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("admin (admin)")

    env = clean_env(GARRISON_SERVER_URL=live.url, GARRISON_DATA_DIR=str(live.data_dir))
    assert json.loads(garrison("whoami", "--json", cwd=tmp_path, env=env).stdout) == {
        "username": "admin",
        "role": "admin",
    }

    # With nothing given, ./garrison-data/admin.token of the working directory.
    (tmp_path / "garrison-data").mkdir()
    (tmp_path / "garrison-data" / "admin.token").write_text(live.token + "\n")
    result = garrison("whoami", "--json", cwd=tmp_path, env=clean_env(GARRISON_SERVER_URL=live.url))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["username"] == "admin"


def test_server_and_token_from_the_environment(live: LiveServer, tmp_path: Path) -> None:
    env = clean_env(GARRISON_SERVER_URL=live.url, GARRISON_TOKEN=live.token)
    result = garrison("keys", "list", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)

    # A flag wins over the environment.
    wrong = garrison("keys", "list", "--token", "not-a-token", cwd=tmp_path, env=env)
    assert_one_line_error(wrong, 1)


def test_no_token_anywhere_is_a_usage_error(live: LiveServer, tmp_path: Path) -> None:
    message = assert_one_line_error(garrison("keys", "list", "--server", live.url, cwd=tmp_path), 2)
    assert message.startswith("error: no admin token: give --token, set GARRISON_TOKEN")


# Stations and jobs ------------------------------------------------------------------------


def test_job_for_an_enrolled_station_is_created_listed_and_cancelled(
    cli: Cli, station: tuple[ArmaditoAgent, int]
) -> None:
    agent, station_id = station
    page = cli.json("stations", "list", "--search", agent.uuid)
    assert [st["id"] for st in page["items"]] == [station_id]
    assert page["items"][0]["uuid"] == agent.uuid

    shown = cli("stations", "show", station_id)
    assert shown.returncode == 0, shown.stderr
    assert agent.uuid in shown.stdout

    job = cli.json(
        "jobs", "create", "--type", "Scan", "--station", station_id,
        "--path", "/tmp/scanme", "--priority", "high", "--param", "scanconfig_id=2",
    )  # fmt: skip
    assert (job["type"], job["priority"]) == ("Scan", 2)
    assert job["params"]["path"] == "/tmp/scanme"
    assert job["params"]["scanconfig_id"] == 2
    assert [(t["station_id"], t["status"]) for t in job["targets"]] == [(station_id, "queued")]

    listed = cli.json("jobs", "list", "--station", station_id, "--status", "queued")
    assert job["id"] in [j["id"] for j in listed["items"]]
    table = cli("jobs", "list", "--station", station_id)
    assert table.returncode == 0, table.stderr
    assert "/tmp/scanme" in table.stdout
    assert "high" in table.stdout

    assert cli.json("jobs", "cancel", job["id"]) == {"job_id": job["id"], "cancelled": 1}
    detail = cli.json("jobs", "show", job["id"])
    assert [t["status"] for t in detail["targets"]] == ["cancelled"]
    assert agent.getjobs().json() == {"jobs": []}


def test_alerts_are_listed_and_acknowledged(cli: Cli, station: tuple[ArmaditoAgent, int]) -> None:
    agent, station_id = station
    alert = {
        "name": "Eicar-Test-Signature",
        "filepath": "/tmp/[scan]/eicar.com",
        "action": "none",
        "module_name": "clamav",
        "detection_time": 1500000100,
    }
    assert agent.alerts([alert]).status_code == 200

    table = cli("alerts", "list", "--station", station_id, "--unacknowledged")
    assert table.returncode == 0, table.stderr
    assert "/tmp/[scan]/eicar.com" in table.stdout
    [item] = cli.json("alerts", "list", "--station", station_id, "--unacknowledged")["items"]
    assert item["threat_name"] == "Eicar-Test-Signature"

    [acked] = cli.json("alerts", "ack", item["id"])
    assert acked["acknowledged_by"] == "admin"
    assert cli.json("alerts", "list", "--station", station_id, "--unacknowledged")["items"] == []

    # Triage: assigned, commented, shown with the comment; unassigned.
    [assigned] = cli.json("alerts", "assign", item["id"], "--to", "admin")
    assert assigned["assigned_to"] == "admin"
    mine = cli.json("alerts", "list", "--station", station_id, "--assigned-to", "admin")
    assert [a["id"] for a in mine["items"]] == [item["id"]]
    note = cli.json("alerts", "comment", item["id"], "[b]seen[/b] on the test host")
    assert note["author"] == "admin"
    shown = cli("alerts", "show", item["id"])
    assert shown.returncode == 0, shown.stderr
    assert "[b]seen[/b] on the test host" in shown.stdout
    assert cli.json("alerts", "show", item["id"])["comments"][0]["id"] == note["id"]
    assert "already assigned" in assert_one_line_error(
        cli("alerts", "assign", item["id"], "--to", "admin"), 1
    )
    assert "no user 'ghost'" in assert_one_line_error(
        cli("alerts", "assign", item["id"], "--to", "ghost"), 1
    )
    assert_one_line_error(cli("alerts", "assign", item["id"]), 2)
    [unassigned] = cli.json("alerts", "assign", item["id"], "--unassign")
    assert unassigned["assigned_to"] is None


def test_scans_are_listed_and_shown(cli: Cli) -> None:
    agent, station_id = enroll(cli)  # its own station: the list is exactly its scans
    report = {"progress": 100, "duration": "PT0H1M0S", "scanned_count": 42, "malware_count": 1}
    scan_id = agent.scan(report).json()["scan_id"]
    agent.client.close()

    table = cli("scans", "list", "--station", station_id)
    assert table.returncode == 0, table.stderr
    assert "1-1 of 1 scans" in table.stdout
    [item] = cli.json("scans", "list", "--station", station_id)["items"]
    assert (item["id"], item["scanned_count"], item["malware_count"]) == (scan_id, 42, 1)

    shown = cli("scans", "show", scan_id)
    assert shown.returncode == 0, shown.stderr
    assert f"Scan {scan_id}" in shown.stdout
    assert "60 s" in shown.stdout
    assert cli.json("scans", "show", scan_id) == item
    assert "999999" in assert_one_line_error(cli("scans", "show", 999999), 1)


def test_station_state_config_and_groups(cli: Cli, station: tuple[ArmaditoAgent, int]) -> None:
    agent, station_id = station
    assert agent.state().status_code == 200
    assert agent.avconfig([("on-access:enabled", "1")]).status_code == 200

    state = cli("stations", "state", station_id)
    assert state.returncode == 0, state.stderr
    assert "up-to-date" in state.stdout
    assert "clamav" in state.stdout
    config = cli.json("stations", "config", station_id, "avconfig")
    assert config["effective"]["on-access:enabled"] == "1"

    assert cli.json("groups", "create", "cli-lab")["name"] == "cli-lab"
    assert cli.json("groups", "add", "cli-lab", station_id)["station_ids"] == [station_id]
    groups = {g["name"]: g["stations"] for g in cli.json("groups", "list")}
    assert groups["cli-lab"] == 1
    in_group = cli.json("stations", "list", "--group", "cli-lab")["items"]
    assert [st["id"] for st in in_group] == [station_id]
    assert cli.json("groups", "remove", "cli-lab", station_id)["station_ids"] == []
    assert cli.json("groups", "delete", "cli-lab") == {"group": "cli-lab", "deleted": True}


def test_station_delete_asks_for_yes(cli: Cli) -> None:
    agent, station_id = enroll(cli)
    agent.client.close()
    refused = assert_one_line_error(cli("stations", "delete", station_id), 2)
    assert "--yes" in refused
    assert cli.json("stations", "delete", station_id, "--yes") == {
        "station_id": station_id,
        "deleted": True,
    }
    assert_one_line_error(cli("stations", "show", station_id), 1)


def test_stations_allow_lifts_a_denial(cli: Cli) -> None:
    agent, station_id = enroll(cli)
    # Denied as the authorization procedure denies a returning station (tested in
    # tests/events/test_authorization_at_return.py); here only the CLI's part.
    database = Database(f"sqlite:///{cli.live.data_dir / 'garrison.db'}")
    try:
        with database.transaction() as session:
            session.execute(
                update(Station).where(Station.id == station_id).values(denied_at=utcnow())
            )
    finally:
        database.dispose()
    assert agent.getjobs().json()["code"] == "station_denied"
    shown = cli("stations", "show", station_id)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"denied\s+\d{4}-\d\d-\d\d", shown.stdout), shown.stdout
    allowed = cli("stations", "allow", station_id)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout == f"station {station_id} allowed\n"
    assert agent.getjobs().status_code == 200
    assert cli.json("stations", "allow", station_id)["denied_at"] is None
    assert "999999" in assert_one_line_error(cli("stations", "allow", 999999), 1)
    agent.client.close()


# Users, login, settings, audit ------------------------------------------------------------


def test_users_create_set_role_and_login(cli: Cli, tmp_path: Path) -> None:
    created = cli.json(
        "users", "create", "carol", "--role", "viewer", "--password", "carol-password-1"
    )
    assert (created["username"], created["role"]) == ("carol", "viewer")
    assert cli.json("users", "set-role", "carol", "operator")["role"] == "operator"
    table = cli("users", "list")
    assert table.returncode == 0, table.stderr
    assert re.search(r"carol\s.*operator", table.stdout)

    # A password on stdin, for scripts.
    dave = cli.json("users", "create", "dave", "--role", "viewer", stdin="dave-password-1\n")
    assert dave["username"] == "dave"

    url = cli.live.url
    login = garrison(
        "login", "-u", "carol", "--password", "carol-password-1", "--server", url, cwd=tmp_path
    )
    assert login.returncode == 0, login.stderr
    token = login.stdout.strip()
    me = garrison("whoami", "--json", "--server", url, "--token", token, cwd=tmp_path)
    assert json.loads(me.stdout) == {"username": "carol", "role": "operator"}

    saved = garrison(
        "login", "-u", "carol", "--save", "--server", url, "--data-dir", str(tmp_path / "d"),
        cwd=tmp_path, stdin="carol-password-1\n",
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    token_file = tmp_path / "d" / "admin.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    me = garrison("whoami", "--server", url, "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert me.stdout.startswith("carol (operator)")

    wrong = garrison(
        "login", "-u", "carol", "--password", "not-her-password", "--server", url, cwd=tmp_path
    )
    assert_one_line_error(wrong, 1)


def test_settings_and_audit(cli: Cli) -> None:
    assert cli.json("settings", "set", "getjobs_limit=20")["getjobs_limit"] == 20
    entries = cli.json("audit", "list", "--action", "settings")
    assert entries[0]["action"] == "settings.update"
    assert entries[0]["details"] == {"getjobs_limit": 20}
    bad = assert_one_line_error(cli("settings", "set", "getjobs_limit=1000"), 1)
    assert "getjobs_limit" in bad


# Errors: one line on stderr, the right exit code, never a traceback ----------------------


def test_wrong_token(live: LiveServer, tmp_path: Path) -> None:
    result = garrison("keys", "list", "--server", live.url, "--token", "wrong", cwd=tmp_path)
    message = assert_one_line_error(result, 1)
    assert "token" in message


def test_unreachable_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = garrison("stations", "list", "--server", url, "--token", "t", cwd=tmp_path)
    message = assert_one_line_error(result, 1)
    assert message.startswith(f"error: cannot reach server at {url} (--server)")
    # It says how to point the CLI elsewhere.
    assert message.rstrip().endswith("give its URL with --server or GARRISON_SERVER_URL")
    from_env = garrison(
        "stations", "list", "--token", "t", cwd=tmp_path, env=clean_env(GARRISON_SERVER_URL=url)
    )
    assert f"{url} (GARRISON_SERVER_URL)" in assert_one_line_error(from_env, 1)


def test_the_cli_finds_the_local_server_by_its_data_dir(live: LiveServer, tmp_path: Path) -> None:
    """``serve`` records its URL in the data dir; with neither --server nor
    GARRISON_SERVER_URL the CLI uses it (the token comes from the same directory)."""
    recorded = live.data_dir / "server.url"
    assert recorded.read_text(encoding="utf-8") == live.url + "\n"
    assert stat.S_IMODE(recorded.stat().st_mode) == 0o600  # every file of the data dir
    result = garrison("whoami", "--data-dir", str(live.data_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"at {live.url}" in result.stdout
    # The same through GARRISON_DATA_DIR, and --server still wins over the file.
    env = clean_env(GARRISON_DATA_DIR=str(live.data_dir))
    assert garrison("whoami", cwd=tmp_path, env=env).returncode == 0
    elsewhere = f"http://127.0.0.1:{free_port()}"
    wrong = garrison("whoami", "--server", elsewhere, cwd=tmp_path, env=env)
    assert f"cannot reach server at {elsewhere} (--server)" in assert_one_line_error(wrong, 1)


def test_unknown_station(cli: Cli) -> None:
    assert "999999" in assert_one_line_error(cli("stations", "show", 999999), 1)
    job = cli("jobs", "create", "--station", 999999, "--path", "/tmp")
    assert "999999" in assert_one_line_error(job, 1)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["jobs", "create", "--station", "1", "--priority", "huge"], "--priority"),
        (["jobs", "create", "--path", "/tmp"], "--station"),
        (["jobs", "create", "--station", "1", "--param", "no-equals-sign"], "key=value"),
    ],
)
def test_usage_errors_exit_2(cli: Cli, args: list[str], expected: str) -> None:
    assert expected in assert_one_line_error(cli(*args), 2)
