"""``garrison procedures`` and ``garrison events`` against a real server: the CLI runs as a
subprocess and talks HTTP to ``garrison serve`` on a free port.  One server for the module
(each test uses its own procedures and stations, so the order of tests does not matter).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.cli.helpers import Cli, assert_one_line_error, enroll
from tests.live import LiveServer
from tests.support import ArmaditoAgent, wait_for

GREETER = """\
local args = ...
garrison.log("hello " .. tostring(args.virus))
return {seen = args.virus}
"""
RETURNS_ARGS = "local args = ...\nreturn {seen = args.virus, count = 2}\n"
FAILS = 'error("boom")\n'
MD5 = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def cli(live: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    # The files the usage-error tests name (relative to the CLI's working directory).
    cwd = tmp_path_factory.mktemp("procedures-cwd")
    (cwd / "bad-args.json").write_text("{oops")
    (cwd / "list-args.json").write_text("[1, 2]")
    (cwd / "empty.lua").write_text("\n")
    (cwd / "ok.lua").write_text(RETURNS_ARGS)
    return Cli(live, cwd)


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# Procedures ---------------------------------------------------------------------------------


def test_set_show_versions_and_list(cli: Cli, tmp_path: Path) -> None:
    source = write(tmp_path / "blocked.lua", RETURNS_ARGS)
    first = cli("procedures", "set", "device_blocked", source)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "procedure device_blocked: version 1, enabled (saved)\n"

    second = cli.json("procedures", "set", "device_blocked", source, "--disabled")
    assert (second["name"], second["version"], second["enabled"]) == ("device_blocked", 2, False)
    assert second["source"] == RETURNS_ARGS

    shown = cli("procedures", "show", "device_blocked")
    assert shown.returncode == 0, shown.stderr
    assert "version" in shown.stdout
    assert shown.stdout.endswith(RETURNS_ARGS)  # the source, exactly, after the summary

    versions = cli.json("procedures", "versions", "device_blocked")
    assert [v["version"] for v in versions] == [2, 1]
    assert {v["created_by"] for v in versions} == {"admin"}
    table = cli("procedures", "versions", "device_blocked")
    assert table.returncode == 0, table.stderr
    assert "2 version(s)" in table.stdout

    listed = {p["name"]: p for p in cli.json("procedures", "list")}
    assert listed["device_blocked"]["version"] == 2
    table = cli("procedures", "list")
    assert table.returncode == 0, table.stderr
    assert "device_blocked" in table.stdout


def test_set_from_stdin(cli: Cli) -> None:
    stored = cli.json("procedures", "set", "station_scan_error", "-", stdin=RETURNS_ARGS)
    assert (stored["source"], stored["enabled"]) == (RETURNS_ARGS, True)


def test_set_refuses_a_syntax_error_and_an_unknown_event(cli: Cli, tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.lua", "local x = \n")
    assert "syntax error" in assert_one_line_error(
        cli("procedures", "set", "task_executed", broken), 1
    )
    ok = write(tmp_path / "ok.lua", RETURNS_ARGS)
    assert "no event procedure 'nope'" in assert_one_line_error(
        cli("procedures", "set", "nope", ok), 1
    )


def test_dry_run_with_an_args_file(cli: Cli, tmp_path: Path) -> None:
    args = write(tmp_path / "args.json", json.dumps({"virus": "Eicar", "id": 1}))
    assert cli.json("procedures", "set", "virus_bases_received", "-", stdin=RETURNS_ARGS)

    result = cli("procedures", "test", "virus_bases_received", "--args", args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert '{"count": 2, "seen": "Eicar"}' in result.stdout  # keys sorted, for people
    assert "none" in result.stdout  # no logs

    dry = cli.json("procedures", "test", "virus_bases_received", "--args", args)
    assert dry["result"] == {"seen": "Eicar", "count": 2}
    assert (dry["error"], dry["logs"]) == (None, [])

    # Another source than the stored one, and args on stdin.
    other = write(tmp_path / "other.lua", "return 'deny'\n")
    dry = cli.json(
        "procedures", "test", "virus_bases_received", "--args", "-", "--source", other,
        stdin='{"virus": "X"}',
    )  # fmt: skip
    assert dry["result"] == "deny"
    # A dry run changes nothing: the stored procedure is still version 1.
    assert cli.json("procedures", "show", "virus_bases_received")["version"] == 1


def test_dry_run_of_a_procedure_that_is_not_set(cli: Cli, tmp_path: Path) -> None:
    args = write(tmp_path / "args.json", "{}")
    message = assert_one_line_error(
        cli("procedures", "test", "agent_installation", "--args", args), 1
    )
    assert "no procedure is set for agent_installation" in message


def test_dry_run_shows_the_logs(cli: Cli, tmp_path: Path) -> None:
    args = write(tmp_path / "args.json", json.dumps({"virus": "Eicar"}))
    source = write(tmp_path / "greeter.lua", GREETER)
    result = cli("procedures", "test", "threat_detected", "--args", args, "--source", source)
    assert result.returncode == 0, result.stderr
    assert "hello Eicar" in result.stdout
    dry = cli.json("procedures", "test", "threat_detected", "--args", args, "--source", source)
    assert dry["logs"] == ["hello Eicar"]
    assert dry["result"] == {"seen": "Eicar"}


def test_a_failing_dry_run_exits_1_with_its_error(cli: Cli, tmp_path: Path) -> None:
    args = write(tmp_path / "args.json", "{}")
    source = write(tmp_path / "fails.lua", FAILS)
    result = cli("procedures", "test", "threat_detected", "--args", args, "--source", source)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "boom" in result.stdout  # the result table, error included
    assert result.stderr.startswith("error: procedure threat_detected failed: ")
    assert "boom" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr

    scripted = cli("procedures", "test", "threat_detected", "--args", args, "--source", source,
                   "--json")  # fmt: skip
    assert scripted.returncode == 1
    assert "boom" in json.loads(scripted.stdout)["error"]


def test_disable_enable_delete(cli: Cli) -> None:
    assert cli.json("procedures", "set", "station_reboot_required", "-", stdin=RETURNS_ARGS)
    disabled = cli("procedures", "disable", "station_reboot_required")
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout == "procedure station_reboot_required: version 1, disabled\n"
    assert cli.json("procedures", "show", "station_reboot_required")["enabled"] is False
    assert cli.json("procedures", "enable", "station_reboot_required")["enabled"] is True

    refused = assert_one_line_error(cli("procedures", "delete", "station_reboot_required"), 2)
    assert "--yes" in refused
    deleted = cli("procedures", "delete", "station_reboot_required", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == "procedure station_reboot_required deleted\n"
    gone = assert_one_line_error(cli("procedures", "show", "station_reboot_required"), 1)
    assert "no procedure is set" in gone
    # Its history stays.
    assert len(cli.json("procedures", "versions", "station_reboot_required")) == 1


def test_errors_list(cli: Cli) -> None:
    assert isinstance(cli.json("procedures", "errors"), list)
    table = cli("procedures", "errors", "--procedure", "station_deleted", "--limit", 5)
    assert table.returncode == 0, table.stderr
    assert "no errors" in table.stdout


def test_a_failing_procedure_is_listed_in_errors(cli: Cli) -> None:
    assert cli.json("procedures", "set", "station_created", "-", stdin=FAILS)
    try:
        agent, _ = enroll(cli)
        agent.client.close()
        errors = wait_for(
            lambda: cli.json("procedures", "errors", "--procedure", "station_created"),
            timeout=5,
            what="an error recorded for the failing station_created procedure",
            every=0.1,
        )
        assert "boom" in errors[0]["error"]
        table = cli("procedures", "errors", "--procedure", "station_created")
        assert "boom" in table.stdout
    finally:
        # Disabled again so it does not run for the other tests' stations.
        cli.json("procedures", "disable", "station_created")


# Events -------------------------------------------------------------------------------------


def test_search_finds_the_station_created_event(
    cli: Cli, station: tuple[ArmaditoAgent, int]
) -> None:
    agent, station_id = station
    page = cli.json("events", "search", "--station", station_id, "--type", "station_created")
    assert page["total"] == 1
    [event] = page["items"]
    assert (event["type"], event["station_id"]) == ("station_created", station_id)
    assert event["data"]["id"] == station_id

    both = cli.json(
        "events", "search", "--station", station_id,
        "--type", "station_created", "--type", "station_connected",
    )  # fmt: skip
    assert {e["type"] for e in both["items"]} == {"station_created", "station_connected"}

    table = cli("events", "search", "--station", station_id, "--since", "2000-01-01T00:00:00Z")
    assert table.returncode == 0, table.stderr
    assert "station_created" in table.stdout
    assert agent.uuid in table.stdout

    later = cli.json("events", "search", "--station", station_id, "--until", "2000-01-01")
    assert later["items"] == []
    bad = assert_one_line_error(cli("events", "search", "--since", "yesterday"), 1)
    assert "since" in bad


def test_search_and_ioc_sweep_by_hash(
    cli: Cli, station: tuple[ArmaditoAgent, int], tmp_path: Path
) -> None:
    agent, station_id = station
    sent_at = dt.datetime.now(dt.UTC)
    posted = agent.client.post(
        "/api/events",
        headers=agent.headers(),
        json=[
            {
                "id": "cli-hash-1",
                "type": "process_started",
                "data": {
                    "time": 1700000000,
                    "unique_pid": "7",
                    "file_path": "/usr/bin/nc",
                    "md5": MD5,
                },
            }
        ],
    )
    assert posted.status_code == 200, posted.text

    found = cli.json("events", "search", "--hash", MD5.upper())
    assert [(e["type"], e["station_id"]) for e in found["items"]] == [
        ("process_started", station_id)
    ]
    # Paths match exactly in any case, or by their file name.
    for path in ("/USR/BIN/NC", "nc"):
        by_path = cli.json("events", "search", "--station", station_id, "--path", path)
        assert [e["id"] for e in by_path["items"]] == ["cli-hash-1"]

    sweep = cli.json("events", "ioc", MD5)
    assert sweep["station_ids"] == [station_id]
    assert [e["data"]["md5"] for e in sweep["events"]] == [MD5]
    hashes = write(tmp_path / "hashes.txt", f"# from the report\n{MD5}\n\n{'f' * 64}\n")
    table = cli("events", "ioc", "--file", hashes)
    assert table.returncode == 0, table.stderr
    assert "process_started" in table.stdout
    assert f"1 station(s) saw these hashes: {station_id}" in table.stdout
    # Both times: the station's (2023), and the server's at receipt (today, UTC).
    assert "2023-11-14 22:13:20" in table.stdout
    days = {d.strftime("%Y-%m-%d") for d in (sent_at, dt.datetime.now(dt.UTC))}
    assert any(day in table.stdout for day in days)

    assert cli.json("events", "ioc", "e" * 40) == {"events": [], "station_ids": []}


def test_ioc_with_a_malformed_hash_is_one_line(cli: Cli) -> None:
    message = assert_one_line_error(cli("events", "ioc", MD5, "not-a-hash"), 1)
    assert "not-a-hash" in message


def test_types_lists_the_catalogue(cli: Cli) -> None:
    types = {t["name"]: t for t in cli.json("events", "types")}
    assert types["threat_detected"]["procedure"] == "threat_detected"
    assert {"station_created", "process_started"} <= set(types)
    table = cli("events", "types")
    assert table.returncode == 0, table.stderr
    assert "threat_detected" in table.stdout
    assert "event type(s)" in table.stdout


def test_retention_show_and_refusals(cli: Cli) -> None:
    days = cli.json("events", "retention", "show")
    assert isinstance(days["threat_detected"], int)
    table = cli("events", "retention", "show")
    assert table.returncode == 0, table.stderr
    assert "process_started" in table.stdout
    assert "unknown event type 'nope'" in assert_one_line_error(
        cli("events", "retention", "set", "nope=3"), 1
    )
    assert "1 to 36500" in assert_one_line_error(
        cli("events", "retention", "set", "process_started=0"), 1
    )


def test_retention_set_and_show(cli: Cli) -> None:
    changed = cli.json("events", "retention", "set", "process_started=7", "threat_detected=90")
    assert (changed["process_started"], changed["threat_detected"]) == (7, 90)
    assert cli.json("events", "retention", "show")["process_started"] == 7
    table = cli("events", "retention", "show")
    assert table.returncode == 0, table.stderr


# Usage errors: one line on stderr, exit 2, nothing sent ----------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["procedures", "set", "threat_detected", "missing.lua"], "missing.lua"),
        (["procedures", "set", "threat_detected", "empty.lua"], "is empty"),
        (["procedures", "test", "threat_detected", "--args", "missing.json"], "missing.json"),
        (["procedures", "test", "threat_detected", "--args", "bad-args.json"], "not valid JSON"),
        (["procedures", "test", "threat_detected", "--args", "list-args.json"], "JSON object"),
        (
            ["procedures", "test", "threat_detected", "--args", "-", "--source", "-"],
            "stdin",
        ),
        (
            [
                "procedures",
                "test",
                "threat_detected",
                "--args",
                "bad-args.json",
                "--source",
                "ok.lua",
            ],
            "bad-args.json",
        ),
        (["procedures", "delete", "threat_detected"], "--yes"),
        (["events", "ioc"], "HASH"),
        (["events", "ioc", "--file", "missing.txt"], "missing.txt"),
        (["events", "retention", "set", "process_started=seven"], "whole number"),
        (["events", "retention", "set", "process_started=-1"], "whole number"),
        (["events", "retention", "set", "process_started"], "TYPE=DAYS"),
    ],
)
def test_usage_errors_exit_2(cli: Cli, args: list[str], expected: str) -> None:
    assert expected in assert_one_line_error(cli(*args), 2)


# Procedure sets ---------------------------------------------------------------------------


def test_procedure_sets_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    made = cli("procedures", "sets", "set", "cli-vendor", "--order", "40")
    assert made.returncode == 0, made.stderr
    assert made.stdout == "procedure set cli-vendor: order 40, enabled, 0 procedure(s) (saved)\n"
    tie = assert_one_line_error(cli("procedures", "sets", "set", "cli-other", "--order", "40"), 1)
    assert "'cli-vendor' already has order 40" in tie
    listed = cli.json("procedures", "sets", "list")
    assert [s["name"] for s in listed if s["name"] in ("default", "cli-vendor")] == [
        "default",
        "cli-vendor",
    ]
    source = write(tmp_path / "vendor.lua", "return 'from vendor'\n")
    put = cli("procedures", "set", "component_started", source, "--set", "cli-vendor")
    assert put.returncode == 0, put.stderr
    assert (
        put.stdout == "procedure component_started in set cli-vendor: version 1, enabled (saved)\n"
    )
    nowhere = cli("procedures", "set", "component_started", source, "--set", "cli-nowhere")
    assert "no procedure set 'cli-nowhere'" in assert_one_line_error(nowhere, 1)
    tested = cli.json("procedures", "test", "component_started")
    assert [(s["set"], s["result"]) for s in tested["chain"]] == [("cli-vendor", "from vendor")]
    shown = cli.json("procedures", "show", "component_started", "--set", "cli-vendor")
    assert (shown["set"], shown["order"]) == ("cli-vendor", 40)
    off = cli("procedures", "sets", "disable", "cli-vendor")
    assert off.stdout == "procedure set cli-vendor: order 40, disabled, 1 procedure(s)\n"
    gone = cli("procedures", "sets", "delete", "cli-vendor", "--yes")
    assert gone.stdout == "procedure set cli-vendor deleted\n"
    refused = cli("procedures", "sets", "delete", "default", "--yes")
    assert "cannot be deleted" in assert_one_line_error(refused, 1)


def test_stations_locate_from_the_cli(cli: Cli) -> None:
    agent, station_id = enroll(cli)
    agent.client.close()
    located = cli(
        "stations", "locate", station_id, "--latitude", "-33.86882", "--longitude", "151.209296"
    )
    assert located.returncode == 0, located.stderr
    assert located.stdout == f"station {station_id} location: -33.868820, 151.209296\n"
    assert "location" in cli("stations", "show", station_id).stdout
    precise = cli("stations", "locate", station_id, "--latitude", "1.1234567", "--longitude", "0")
    assert "more than 6 decimals" in assert_one_line_error(precise, 1)
    half = cli("stations", "locate", station_id, "--latitude", "1")
    assert "both --latitude and --longitude" in assert_one_line_error(half, 2)
    cleared = cli("stations", "locate", station_id, "--clear")
    assert cleared.stdout == f"station {station_id} location: unknown\n"
