"""Real processes: ``garrison serve`` and ``garrison-agent run`` as root.  A sensor policy set
for the station's group reaches the running agent within one check-in and turns a sensor
off without a restart; a malformed policy (written straight into the database, around the
server's checks) is refused by the agent with its reason in the station's sensor status,
and the previous policy stays."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from garrison.agent import config as configmod
from garrison.agent.sensors.runner import POLICY_OFF
from garrison.server.options.service import touch_marker
from garrison.server.sensors.models import DEFAULT_SCOPE, SensorPolicy
from garrison.server.sensors.service import POLICY_MARKER
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database
from tests.agent.test_live import Admin
from tests.agent.test_sensors_live import Daemon, _connector_problem
from tests.agent.test_sensors_live import agent as agent
from tests.live import LiveServer, start_server
from tests.support import wait_for

pytestmark = pytest.mark.slow
LONG_POLL = 2  # seconds: one check-in cycle of these agents


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    problem = _connector_problem()
    if problem:
        pytest.skip(problem)
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


def _quick(config: configmod.AgentConfig) -> None:
    config.daemon.long_poll = LONG_POLL


def _sensors(admin: Admin, station: int) -> dict[str, Any]:
    found: dict[str, Any] = admin.call("GET", f"/stations/{station}/sensors")
    return found


def _state(admin: Admin, station: int, name: str) -> tuple[str, str] | None:
    for item in _sensors(admin, station)["sensors"]:
        if item["sensor"] == name:
            return item["state"], item["reason"]
    return None


def test_a_group_policy_turns_a_sensor_off_within_one_check_in(
    server: LiveServer, agent: Callable[..., Daemon]
) -> None:
    admin = Admin(server)
    daemon = agent(_quick)
    station = admin.station_id()
    wait_for(
        lambda: _state(admin, station, "ports") == ("running", ""),
        timeout=30,
        what="the ports sensor running",
        every=0.3,
    )
    pid = daemon.process.pid if daemon.process else 0
    admin.call("POST", "/groups", json={"name": "servers"})
    admin.call("POST", "/groups/servers/stations", json={"add": [station]})
    admin.call("PUT", "/groups/servers/sensor-policy", json={"settings": {"ports": False}})
    version = admin.call("GET", f"/stations/{station}/sensor-policy")["version"]

    # One check-in cycle is LONG_POLL seconds; the health event follows the state change
    # within half a second.  Allow one cycle, its request and a little slack.
    wait_for(
        lambda: _state(admin, station, "ports") == ("disabled", POLICY_OFF),
        timeout=LONG_POLL + 3,
        what="the ports sensor disabled by the group's policy",
        every=0.2,
    )
    status = _sensors(admin, station)
    assert status["policy_version"] == version
    assert _state(admin, station, "process") == ("running", "")
    assert daemon.process is not None
    assert daemon.process.pid == pid
    assert daemon.process.poll() is None  # the same agent, never restarted

    # Dropping the group's policy turns it back on (agent.toml's value).
    deleted = httpx.delete(
        f"{server.url}/admin/v1/groups/servers/sensor-policy",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )
    assert deleted.status_code == 204, deleted.text
    wait_for(
        lambda: _state(admin, station, "ports") == ("running", ""),
        timeout=LONG_POLL + 3,
        what="the ports sensor running again",
        every=0.2,
    )
    log = daemon.stop()
    assert "sensor policy" in log


def test_a_malformed_policy_is_refused_and_the_previous_stays(
    server: LiveServer, agent: Callable[..., Daemon]
) -> None:
    admin = Admin(server)
    daemon = agent(_quick)
    station = admin.station_id()
    admin.call("PUT", "/sensor-policy", json={"settings": {"terminal": False}})
    good = admin.call("GET", f"/stations/{station}/sensor-policy")["version"]
    wait_for(
        lambda: _sensors(admin, station)["policy_version"] == good,
        timeout=LONG_POLL + 5,
        what="the good policy applied",
        every=0.2,
    )
    # Around the server's checks: what a buggy or newer server could send.
    db = Database(f"sqlite:///{(server.data_dir / 'garrison.db').resolve()}")
    try:
        with db.transaction() as session:
            row = session.get(SensorPolicy, DEFAULT_SCOPE)
            assert row is not None
            row.settings = {"terminal": True, "ports": "off"}
            row.updated_at = utcnow()
            # The marker every policy change writes: the server's nodes drop their cache of
            # effective policies when it moves (garrison.server.sensors.cache).
            touch_marker(session, POLICY_MARKER)
    finally:
        db.dispose()

    status = wait_for(
        lambda: _sensors(admin, station),
        lambda found: bool(found["policy_error"]),
        timeout=LONG_POLL + 5,
        what="the policy refused",
        every=0.2,
    )
    assert "ports: must be true or false" in status["policy_error"]
    assert status["policy_version"] == good
    assert _state(admin, station, "terminal") == ("disabled", POLICY_OFF)  # still the old one
    log = daemon.stop()
    assert "refused" in log
    assert "the previous policy stays" in log
