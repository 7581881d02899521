"""The tests' rsyslog helper: a port another process took before rsyslogd bound it is picked
again, so that no test's messages go to whatever holds it."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.export.rsyslog import Rsyslog


def test_an_input_whose_port_was_taken_gets_another(tmp_path: Path) -> None:
    thief = socket.socket()
    try:
        thief.bind(("127.0.0.1", 0))
        thief.listen()
        taken = thief.getsockname()[1]
        rsyslog = Rsyslog(tmp_path, {"one": (taken, False)}, None)
        rsyslog.start()
        try:
            port = rsyslog.inputs["one"][0]
            assert port != taken
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(b"<13>Dec  3 15:00:00 host test: hello\n")
            lines = rsyslog.wait_lines("one", lambda found: bool(found), 20)
            assert any("hello" in line for line in lines), lines
        finally:
            rsyslog.stop()
    finally:
        thief.close()
