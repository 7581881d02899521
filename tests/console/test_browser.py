"""The console in a real browser: Debian's Chromium driven by Playwright, against a real
``garrison serve`` and a real ``garrison-agent``.  One server and one browser for the
module; each test is a walk a person would take, with a screenshot of each page (kept in
docs/console/ when GARRISON_CONSOLE_SCREENSHOTS=1: see docs/console.md) and axe-core's
checks on it (no serious or critical violation)."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent.helpers import agent_env, run_agent, write_eicar
from tests.live import LiveServer, start_server

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"
UUID = "C0FFEE00-1234-4321-AAAA-0000000C0501"
ADMIN = ("ada", "ada-password-123")
VIEWER = ("vic", "vic-password-123")
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # Live streams poll the log every 0.3 s here, so that "live" shows within the waits.
    srv = start_server(
        tmp_path_factory.mktemp("console") / "data",
        extra_env={"GARRISON_CONSOLE_LIVE_SECONDS": "0.3"},
    )
    for (name, password), role in ((ADMIN, "admin"), (VIEWER, "viewer")):
        made = httpx.post(
            f"{srv.url}/admin/v1/users",
            json={"username": name, "password": password, "role": role},
            headers={"Authorization": f"Bearer {srv.token}"},
        )
        assert made.status_code == 201, made.text
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield launched
        launched.close()


def _shots(tmp_path: Path) -> Path:
    if os.environ.get("GARRISON_CONSOLE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return tmp_path


def check(page: Any, shots: Path, name: str) -> None:
    """A screenshot, and axe-core's serious and critical violations (there must be none).
    Evaluated through the DevTools protocol: the page's CSP does not apply to it."""
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    page.evaluate(AXE.read_text())
    found = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations
                .filter(v => v.impact === "serious" || v.impact === "critical")
                .map(v => `${v.id}: ${v.help} at `
                    + v.nodes.map(n => n.target.join(" ")).join("; "));
        }"""
    )
    assert found == [], f"{name}: {found}"


def nav(page: Any, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()
    page.wait_for_load_state()


def login(page: Any, url: str, who: tuple[str, str]) -> None:
    page.goto(f"{url}/")
    page.get_by_label("Username").fill(who[0])
    page.get_by_label("Password").fill(who[1])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/stations$"))


def test_an_admin_walks_through_the_console(
    server: LiveServer, browser: Any, tmp_path: Path
) -> None:
    shots = _shots(tmp_path)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{server.url}/")
    check(page, shots, "login")
    page.get_by_label("Username").fill(ADMIN[0])
    page.get_by_label("Password").fill("wrong password!")
    page.get_by_role("button", name="Log in").click()
    assert "wrong username or password" in page.inner_text("#login-problem")
    login(page, server.url, ADMIN)

    # An enrollment key, and the command to paste on a station.
    nav(page, "Enrollment keys")
    page.get_by_label("Uses").fill("5")
    page.get_by_role("button", name="Create").click()
    key = page.input_value("#new-key")
    command = page.input_value("#enroll-command")
    assert command.endswith(f"-k {key}")
    assert server.url in command
    check(page, shots, "keys")

    # The stations page is open when the agent enrolls: the station appears without a reload.
    nav(page, "Stations")
    assert page.locator("a.hostname").count() == 0
    env = agent_env(tmp_path / "agent", UUID)
    enrolled = run_agent(env, "-s", server.url, "-t", "Enrollment", "-k", key)
    assert enrolled.returncode == 0, enrolled.stderr
    hostname = socket.gethostname()
    page.locator("a.hostname", has_text=hostname).wait_for()
    check(page, shots, "stations")

    # A scan job on an EICAR file, from the station's page; its progress is live.
    target = write_eicar(tmp_path / "infected" / "eicar.com")
    page.locator("a.hostname", has_text=hostname).click()
    check(page, shots, "station")
    page.get_by_label("Path to scan").fill(str(target.parent))
    page.get_by_role("button", name="Scan", exact=True).click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    assert page.locator(".job-status").first.inner_text() == "queued"
    assert run_agent(env, "-t", "Getjobs").returncode == 0
    ran = run_agent(env, "-t", "Runjobs")
    assert ran.returncode == 0, ran.stderr
    page.locator(".job-status", has_text="successful").wait_for()
    check(page, shots, "job")

    # The alert it raised: acknowledged from the alerts page.
    nav(page, "Alerts")
    page.locator("td.threat").first.wait_for()
    assert "EICAR" in page.locator("td.threat").first.inner_text().upper()
    check(page, shots, "alerts")
    # Triage on the alert's page: assigned, commented, then acknowledged.
    page.locator("td.threat a").first.click()
    page.wait_for_url(re.compile(r".*/alerts/\d+$"))
    page.get_by_label("Assign to").select_option(ADMIN[0])
    page.get_by_role("button", name="Assign", exact=True).click()
    page.get_by_text(f"{ADMIN[0]}, ").first.wait_for()
    page.get_by_label("Comment", exact=True).fill("the test file of the walk-through")
    page.get_by_role("button", name="Add the comment").click()
    page.locator(".comment-body", has_text="the test file of the walk-through").wait_for()
    check(page, shots, "alert")
    page.get_by_role("button", name="Acknowledge", exact=True).click()
    page.get_by_role("button", name="Acknowledge", exact=True).wait_for(state="detached")
    nav(page, "Alerts")
    page.get_by_text("No alert.").wait_for()

    # A hunt for a file by name, answered by the agent; then the file collected from the
    # station's page (the EICAR file is in the quarantine by now).
    hunted = tmp_path / "hunted" / "notes.txt"
    hunted.parent.mkdir()
    hunted.write_text("found by a hunt\n")
    nav(page, "Hunts")
    page.locator("#f-type").select_option("FindFile")
    page.locator("#f-criterion").select_option("glob")
    page.get_by_label("Value").fill("notes.txt")
    page.get_by_label("Roots (FindFile; comma-separated absolute directories)").fill(
        str(hunted.parent)
    )
    page.get_by_role("button", name="Start the hunt").click()
    page.wait_for_url(re.compile(r".*/hunts/\d+$"))
    assert run_agent(env, "-t", "Getjobs").returncode == 0
    assert run_agent(env, "-t", "Runjobs").returncode == 0
    page.locator("#hunt-results code", has_text=str(hunted)).first.wait_for()
    check(page, shots, "hunt")
    nav(page, "Hunts")
    check(page, shots, "hunts")
    page.goto(f"{server.url}/stations")
    page.locator("a.hostname", has_text=hostname).click()
    page.get_by_label("File (absolute path)").fill(str(hunted))
    page.get_by_role("button", name="Collect the file").click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    assert run_agent(env, "-t", "Getjobs").returncode == 0
    assert run_agent(env, "-t", "Runjobs").returncode == 0
    page.locator(".job-status", has_text="successful").wait_for()
    nav(page, "Collected files")
    page.get_by_role("link", name=re.compile("Download")).first.wait_for()
    check(page, shots, "files")

    # A procedure: a syntax error is shown beside the source, a good one is saved and run.
    page.goto(f"{server.url}/procedures/threat_detected")
    page.get_by_label("Lua source").fill("return ((")
    page.get_by_role("button", name="Save a new version").click()
    assert page.locator("#e-source").inner_text() != ""
    page.get_by_label("Lua source").fill(
        "local args = ...\ngarrison.log('seen ' .. tostring(args.virus))\nreturn 'ok'\n"
    )
    page.get_by_role("button", name="Save a new version").click()
    page.locator("#h-versions").wait_for()
    page.get_by_role("button", name="Dry run").click()
    page.locator("#dry-run").wait_for()
    assert "ok" in page.inner_text("#dry-run")
    check(page, shots, "procedure")

    # An export target to a file, and a test event sent to it.
    # Outside the export directories first: the export slice's message, beside the field.
    nav(page, "Export targets")
    page.get_by_label("Name", exact=True).fill("file-export")
    page.locator("#f-transport").select_option("file")
    page.get_by_label("File (file transport)").fill(str(tmp_path / "export.ndjson"))
    page.get_by_role("button", name="Add the target").click()
    assert page.locator("#e-path").inner_text() != ""
    out = server.data_dir / "export" / "console.ndjson"
    page.get_by_label("File (file transport)").fill(str(out))
    page.get_by_role("button", name="Add the target").click()
    page.get_by_role("button", name="Send a test event").click()
    page.locator("#test-sent").wait_for()
    assert out.exists()
    check(page, shots, "exports")

    for name in ("Dashboard", "Jobs", "Events", "Users", "Audit log", "Settings"):
        nav(page, name)
        page.wait_for_load_state()
        check(page, shots, name.lower().replace(" ", "-"))
    page.get_by_role("button", name=re.compile("Log out")).click()
    page.get_by_text("You are logged out.").wait_for()
    context.close()


def test_phone_width_and_keyboard(server: LiveServer, browser: Any, tmp_path: Path) -> None:
    shots = _shots(tmp_path)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{server.url}/login")
    # Keyboard only: the username has the focus, Tab goes on to the password.
    assert page.evaluate("document.activeElement.id") == "username"
    page.keyboard.type(ADMIN[0])
    page.keyboard.press("Tab")
    page.keyboard.type(ADMIN[1])
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/stations$"))
    # On every page the first Tab reaches the link that skips the navigation.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the page is {width} px wide at phone width"
    check(page, shots, "stations-phone")
    context.close()


def test_a_viewer_sees_no_write_control_and_forced_writes_are_refused(
    server: LiveServer, browser: Any, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    login(page, server.url, VIEWER)
    page.locator("a.hostname").first.click()
    assert page.get_by_role("button", name="Scan", exact=True).count() == 0
    assert page.get_by_role("button", name="Isolate from the network").count() == 0
    station_path = page.url.removeprefix(server.url)
    csrf = page.locator('input[name="csrf_token"]').first.input_value()
    forced = page.request.post(
        f"{server.url}{station_path}/jobs", form={"action": "scan", "csrf_token": csrf}
    )
    assert forced.status == 403
    assert "needs the operator role" in forced.text()
    assert page.get_by_role("button", name="Kill the process").count() == 0
    page.goto(f"{server.url}/hunts")
    assert page.get_by_role("button", name="Start the hunt").count() == 0
    refused_hunt = page.request.post(
        f"{server.url}/hunts", form={"type": "FindFile", "value": "x", "csrf_token": csrf}
    )
    assert refused_hunt.status == 403
    page.goto(f"{server.url}/alerts?acknowledged=any")
    page.locator("td.threat a").first.click()
    assert page.get_by_role("button", name="Add the comment").count() == 0
    alert_path = page.url.removeprefix(server.url)
    refused_note = page.request.post(
        f"{server.url}{alert_path}", form={"do": "comment", "body": "x", "csrf_token": csrf}
    )
    assert refused_note.status == 403
    assert "needs the operator role" in refused_note.text()
    page.goto(f"{server.url}/keys")
    assert "needs the admin role" in page.inner_text("main")
    context.close()

    # An admin's change without the CSRF token is refused, and nothing changes.
    context = browser.new_context()
    page = context.new_page()
    login(page, server.url, ADMIN)
    before = page.request.get(f"{server.url}/keys").text().count("<tr>")
    refused = page.request.post(f"{server.url}/keys", form={"uses": "3", "expires_hours": "1"})
    assert refused.status == 403
    assert "CSRF token" in refused.text()
    assert page.request.get(f"{server.url}/keys").text().count("<tr>") == before
    context.close()
