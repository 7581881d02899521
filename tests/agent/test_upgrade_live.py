"""Real processes (issue 21 item 5): one ``garrison serve`` and one ``garrison-agent run``
daemon moved between builds of this repository by ``UpgradeAgent`` jobs.

- a package the server no longer holds whole (truncated), whose bytes changed (tampered),
  whose statement lost its signature (unsigned), built for another architecture, or that
  does not fit on the disk (a tiny tmpfs over ``versions/``) is refused or abandoned with
  the reason in the job's result, and the agent goes on with the version it had;
- a newer build (this tree, version bumped) takes over: the job succeeds after the new
  version checked in, and the server's station and fleet counts show its version;
- a build whose agent crashes at start, and one that never manages to check in, are rolled
  back: the job fails with the launcher's reason, ``station_update_failed`` says so, and
  the agent keeps answering jobs on the version it had.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from garrison import __version__
from garrison.agent.jobs.upgrade import machine
from garrison.common import agent_package
from tests.agent.test_response_live import Admin, Fleet, Station
from tests.conftest import BACKENDS, EMPTY_TABLES, RESTART_SEQUENCES
from tests.live import LiveServer, start_server
from tests.support import wait_for

# One station goes through the module's upgrades in order (9.1.0, then the rollbacks to it):
# under xdist its tests stay together on one worker, in file order.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("upgrade_live")]
SOURCE = agent_package.source_root()


def tree(root: Path, edits: dict[str, tuple[str, str]] | None = None) -> Path:
    """A copy of this repository's agent code, with ``edits`` (file: (old, new)) applied."""
    out = root / "garrison"
    for part in ("agent", "common"):
        shutil.copytree(SOURCE / "garrison" / part, out / part,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(SOURCE / "garrison" / "__init__.py", out / "__init__.py")
    for name, (old, new) in (edits or {}).items():
        path = out / name
        source = path.read_text()
        assert old in source, f"{name} no longer holds {old!r}: update the broken build"
        path.write_text(source.replace(old, new, 1))
    return root


def build(tmp: Path, version: str, architecture: str = "all", **edits: tuple[str, str]) -> bytes:
    where = tmp / f"build-{version}-{architecture}"
    files = {name.replace("__", "/") + ".py": edit for name, edit in edits.items()}
    return agent_package.build(tree(where, files), version, architecture)


class Upgrades:
    def __init__(self, server: LiveServer, admin: Admin, url: str) -> None:
        self.server, self.admin, self.url = server, admin, url

    def upload(self, data: bytes, version: str, architecture: str = "all") -> dict[str, Any]:
        found: dict[str, Any] = self.admin.call(
            "POST", "/agent-packages", content=data,
            params={"version": version, "architecture": architecture},
            headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip
        return found

    def alter(self, package_id: int, column: str, value: Any) -> None:
        """What storage damage or an attacker with the database would do."""
        engine = create_engine(self.url)
        with engine.begin() as conn:
            conn.execute(
                text(f"UPDATE agent_packages SET {column} = :v WHERE id = :id"),
                {"v": value, "id": package_id},
            )
        engine.dispose()

    def upgrade(self, station: Station, params: dict[str, Any], timeout: float = 90) -> Any:
        job = self.admin.job("UpgradeAgent", station.id, params)
        return self.admin.finished(job, timeout=timeout)

    def version(self, station: Station) -> str:
        return str(self.admin.call("GET", f"/stations/{station.id}")["agent_version"])

    def still_works(self, station: Station, version: str) -> None:
        target = self.admin.finished(self.admin.job("SelfTest", station.id, {}))
        assert target["status"] == "successful", target
        assert station.process.poll() is None, station.log.read_text()[-3000:]
        wait_for(lambda: self.version(station), lambda v: v == version, timeout=30,
                 what=f"station reports {version}")  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_session_url")
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(EMPTY_TABLES)
            conn.exec_driver_sql(RESTART_SEQUENCES)
        engine.dispose()
    srv = start_server(tmp_path_factory.mktemp("upgrade") / "data", url)
    srv.env["url"] = url or f"sqlite:///{srv.data_dir / 'garrison.db'}"
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def fleet(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    group = Fleet(server, tmp_path_factory.mktemp("agents"))
    yield group
    group.stop()


@pytest.fixture(scope="module")
def station(fleet: Fleet) -> Station:
    return fleet.start("upgraded")


@pytest.fixture(scope="module")
def upgrades(server: LiveServer, fleet: Fleet) -> Upgrades:
    return Upgrades(server, fleet.admin, server.env["url"])


def _failed(target: dict[str, Any], *words: str) -> str:
    assert target["status"] == "failed", target
    message = str(target["message"])
    for word in words:
        assert word in message, message
    return message


def test_bad_packages_are_refused_at_upload(upgrades: Upgrades, tmp_path: Path) -> None:
    good = build(tmp_path, "9.0.9")
    for data, params, why in (
        (good[: len(good) // 2], {"version": "9.0.9"}, "not a zip"),
        (b"not a zip at all", {"version": "9.0.9"}, "not a zip"),
        (good, {"version": "9.0.8"}, "its manifest says 9.0.9"),
        (good, {"version": "9.0.9", "architecture": "s390x"}, "9.0.9 for all"),
    ):
        response = upgrades.admin.request(
            "POST", "/agent-packages", content=data, params=params,
            headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip
        assert response.status_code == 422, response.text
        assert why in response.json()["message"], response.text
    response = upgrades.admin.request(
        "POST", "/jobs",
        json={"type": "UpgradeAgent", "station_ids": [1], "params": {"version": "7.7.7"}},
    )  # fmt: skip
    assert response.status_code == 422, response.text


def test_damaged_or_foreign_packages_are_refused_by_the_agent(
    upgrades: Upgrades, station: Station, tmp_path: Path
) -> None:
    other = "s390x" if machine() != "s390x" else "amd64"
    foreign = upgrades.upload(build(tmp_path, "9.0.1", other), "9.0.1", other)
    target = upgrades.upgrade(station, {"version": "9.0.1"})
    _failed(target, f"the package is for {other}, this machine is {machine()}")

    data = build(tmp_path, "9.0.2")
    truncated = upgrades.upload(data, "9.0.2")
    upgrades.alter(truncated["id"], "data", data[: len(data) // 2])
    _failed(upgrades.upgrade(station, {"version": "9.0.2"}), "(truncated)")

    data = build(tmp_path, "9.0.3")
    tampered = upgrades.upload(data, "9.0.3")
    upgrades.alter(tampered["id"], "data", data[:-1] + bytes([data[-1] ^ 1]))
    _failed(upgrades.upgrade(station, {"version": "9.0.3"}), "(tampered)")

    unsigned = upgrades.upload(build(tmp_path, "9.0.4"), "9.0.4")
    upgrades.alter(unsigned["id"], "signature", "")
    _failed(upgrades.upgrade(station, {"version": "9.0.4"}), "unsigned package")

    forged = upgrades.upload(build(tmp_path, "9.0.5"), "9.0.5")
    upgrades.alter(forged["id"], "signature", foreign_signature())
    _failed(upgrades.upgrade(station, {"version": "9.0.5"}), "does not verify")

    assert {p["id"] for p in upgrades.admin.call("GET", "/agent-packages")} >= {
        foreign["id"], truncated["id"], tampered["id"], unsigned["id"], forged["id"]
    }  # fmt: skip
    upgrades.still_works(station, __version__)


def foreign_signature() -> str:
    """A well-formed Ed25519 signature by a key the agent never pinned."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return base64.b64encode(Ed25519PrivateKey.generate().sign(b"x")).decode()


def test_a_full_disk_abandons_the_upgrade(
    upgrades: Upgrades, station: Station, tmp_path: Path
) -> None:
    upgrades.upload(build(tmp_path, "9.0.6"), "9.0.6")
    versions = Path(station.log.parent / "upgraded" / "versions")
    versions.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "garrison-full", str(versions)],
                   check=True)  # fmt: skip
    try:
        target = upgrades.upgrade(station, {"version": "9.0.6"})
    finally:
        subprocess.run(["umount", str(versions)], check=True)
    _failed(target, "could not install version 9.0.6", "No space left on device")
    upgrades.still_works(station, __version__)


def test_an_upgrade_moves_the_agent_to_a_newer_build(
    upgrades: Upgrades, station: Station, tmp_path: Path
) -> None:
    upgrades.upload(build(tmp_path, "9.1.0"), "9.1.0")
    pid = station.process.pid
    target = upgrades.upgrade(station, {"version": "9.1.0", "confirm_seconds": 60})
    assert target["status"] == "successful", (target, station.log.read_text()[-3000:])
    assert target["result"]["from_version"] == __version__
    assert target["result"]["to_version"] == "9.1.0"
    upgrades.still_works(station, "9.1.0")
    counts = upgrades.admin.call("GET", "/agent-versions")
    assert counts["versions"].get("9.1.0") == 1, counts
    assert station.process.pid == pid  # the launcher exec'd in place: same process


def test_a_build_that_crashes_at_start_is_rolled_back(
    upgrades: Upgrades, station: Station, tmp_path: Path
) -> None:
    crash = ("agent.restart_possible = True", "raise RuntimeError('broken build')")
    upgrades.upload(build(tmp_path, "9.2.0", agent__daemon=crash), "9.2.0")
    target = upgrades.upgrade(station, {"version": "9.2.0", "confirm_seconds": 60})
    message = _failed(target, "rolled back to 9.1.0", "9.2.0 exited with code")
    assert target["result"]["status"] == "rolled_back", target
    failures = [
        e for e in upgrades.admin.events("station_update_failed")
        if e.get("station_id") == station.id
    ]  # fmt: skip
    assert any("9.2.0" in str(e) for e in failures), (message, failures)
    upgrades.still_works(station, "9.1.0")


def test_a_build_that_never_checks_in_is_rolled_back(
    upgrades: Upgrades, station: Station, tmp_path: Path
) -> None:
    silent = (
        "checkin = getjobs.check_in(self.agent, wait=wait)",
        "raise AgentError('broken build: no check-in')",
    )
    upgrades.upload(build(tmp_path, "9.3.0", agent__daemon=silent), "9.3.0")
    target = upgrades.upgrade(station, {"version": "9.3.0", "confirm_seconds": 8})
    _failed(target, "rolled back to 9.1.0", "did not check in within 8 s")
    upgrades.still_works(station, "9.1.0")
