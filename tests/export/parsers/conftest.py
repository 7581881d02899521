"""What a real rsyslog received from Garrison's ``eset`` profile, for the parser checks: the
seven ESET types in JSON (RFC 3164 and RFC 5424), LEEF and CEF, Garrison's own types when
a target asks for them, ESET's other Inspect name, and ESET's heartbeat."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.export.rsyslog import Rsyslog, rsyslog_for
from tests.export.test_siem import produce_all_types

KINDS = ("rfc3164", "rfc5424")
FORMATS = ("eset-json", "leef", "cef")
# Target name -> (format, options).
TARGETS: dict[str, tuple[str, dict[str, Any]]] = {
    **{f"{fmt}-{kind}": (fmt, {"envelope": kind}) for fmt in FORMATS for kind in KINDS},
    "own": ("eset-json", {"envelope": "rfc3164", "garrison_events": True}),
    "inspect": ("eset-json", {"envelope": "rfc3164", "inspect_alert_name": "ESET Inspect Alert"}),
    "heartbeat": ("eset-json", {"envelope": "rfc3164", "heartbeat_seconds": 0.5}),
}


@dataclass
class Received:
    lines: dict[str, list[str]]

    def of(self, fmt: str, kind: str) -> list[str]:
        return self.lines[f"{fmt}-{kind}"]


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rsyslog]:
    rsyslog = rsyslog_for(tmp_path_factory.mktemp("rsyslog"), dict.fromkeys(TARGETS, False), None)
    rsyslog.start()
    yield rsyslog
    rsyslog.stop()


def _done(name: str) -> Any:
    if name == "heartbeat":
        return lambda lines: any(line.endswith(": HEARTBEAT") for line in lines)
    # The group's audit entry is produced last.
    return lambda lines: any("audited" in line for line in lines)


@pytest.fixture
def received(server: Server, receiver: Rsyslog, tmp_path: Path) -> Received:
    for name, (fmt, extra) in TARGETS.items():
        options: dict[str, Any] = {
            "aggregation_window_seconds": 0,
            "heartbeat_seconds": 0,
            "profile": "eset",
            **extra,
        }
        created = server.admin.post(
            "/export-targets",
            {
                "name": name,
                "format": fmt,
                "transport": "tcp",
                "host": "127.0.0.1",
                "port": receiver.inputs[name][0],
                "options": options,
            },
        )
        assert created.status_code == 201, created.text
    produce_all_types(server)
    # Polled, not slept: a loaded machine only takes longer.
    return Received({name: receiver.wait_lines(name, _done(name), 60) for name in TARGETS})
