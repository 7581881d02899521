"""The export transports and targets, each against a local receiver written here: UDP
datagrams, TCP streams (RFC 3164 and RFC 5424 envelopes, newline and octet-counting framing,
BOM), the rotated NDJSON file, the HTTP webhook (retried past a 500), the test-send
endpoint, the admin API's checks and roles, the filters, the heartbeat and LEEF 2.0 with a
declared non-printable delimiter."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog
from syslog_rfc5424_parser import SyslogMessage

from bench.common import free_port
from garrison.server.export.actions import NOT_DELIVERED
from tests.conftest import Server
from tests.export import checks
from tests.support import assert_json_error, sqlite_only, wait_for

T = TypeVar("T")
BOM = "\ufeff".encode()
# <PRI>Mmm dd hh:mm:ss host tag: payload (RFC 3164 section 4.1); the day is space-padded.
RFC3164 = re.compile(
    r"^<(?P<pri>\d{1,3})>(?P<month>[A-Z][a-z]{2}) (?P<day>[ \d]\d) "
    r"(?P<time>\d\d:\d\d:\d\d) (?P<host>[!-~]+) garrison: (?P<payload>.*)$",
    re.DOTALL,
)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def create_target(
    server: Server, name: str, fmt: str, transport: str, **fields: Any
) -> dict[str, Any]:
    options: dict[str, Any] = fields.pop("options", {})
    options.setdefault("aggregation_window_seconds", 0)
    options.setdefault("heartbeat_seconds", 0)
    # These tests carry Garrison's own event types (component_started…): Garrison's profile,
    # which sends every type (the eset one is tests/export/parsers/).
    options.setdefault("profile", "garrison")
    body = {"name": name, "format": fmt, "transport": transport, "options": options, **fields}
    created = server.admin.post("/export-targets", body)
    assert created.status_code == 201, created.text
    target: dict[str, Any] = created.json()
    return target


def post_events(server: Server, headers: dict[str, str], events: list[dict[str, Any]]) -> None:
    response = server.client.post("/api/events", json=events, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == len(events), response.text


def started(first: int, count: int, **data: Any) -> list[dict[str, Any]]:
    """``component_started`` events (Information) numbered by their pid."""
    return [
        {"id": f"cs-{first + i}", "type": "component_started", "data": {"pid": first + i, **data}}
        for i in range(count)
    ]


def pids(records: list[dict[str, Any]]) -> list[int]:
    return [int(r["pid"]) for r in records if r.get("event_type") == "component_started"]


# Local receivers ---------------------------------------------------------------------------


class UdpSink:
    """Every datagram received on a loopback port, as it came."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.datagrams.append(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class TcpSink:
    """Accepts any number of connections on a loopback port; keeps each one's bytes apart
    (the exporter and a test send each open their own), with when each chunk came."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.streams: list[bytearray] = []
        self.chunks: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            buffer = bytearray()
            with self._lock:
                self.streams.append(buffer)
            reader = threading.Thread(target=self._read, args=(conn, buffer), daemon=True)
            self._threads.append(reader)
            reader.start()

    def _read(self, conn: socket.socket, buffer: bytearray) -> None:
        conn.settimeout(0.2)
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                with self._lock:
                    buffer.extend(data)
                    self.chunks.append((time.monotonic(), data))

    def data(self) -> list[bytes]:
        with self._lock:
            return [bytes(b) for b in self.streams]

    def lines(self) -> list[bytes]:
        """Newline framing: complete lines of every connection."""
        out: list[bytes] = []
        for stream in self.data():
            out.extend(stream.split(b"\n")[:-1])
        return out

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for thread in self._threads:
            thread.join(5)


def octet_frames(stream: bytes) -> list[bytes]:
    """RFC 6587 octet counting, by hand: ``MSG-LEN SP SYSLOG-MSG``, repeated; an incomplete
    frame at the end (still arriving) is left out."""
    frames, at = [], 0
    while at < len(stream):
        space = stream.index(b" ", at)
        digits = stream[at:space]
        assert re.fullmatch(rb"[1-9][0-9]*", digits), stream[at : at + 20]
        end = space + 1 + int(digits)
        if end > len(stream):
            break
        frames.append(stream[space + 1 : end])
        at = end
    return frames


@dataclass
class HttpSink:
    """A webhook: answers the statuses of ``answers`` in turn (then 200) and keeps every
    request it got (status answered, headers, body)."""

    answers: list[int] = field(default_factory=list)
    requests: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = sink.answers.pop(0) if sink.answers else 200
                sink.requests.append(
                    (status, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def json_logs() -> Iterator[None]:
    """JSON log lines, as ``garrison serve`` writes them (tests/security does the same):
    structlog's unconfigured console renderer spends many seconds drawing each traceback of
    a 500 with its locals."""
    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    )
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.fixture
def udp_sink() -> Iterator[UdpSink]:
    sink = UdpSink()
    yield sink
    sink.close()


@pytest.fixture
def tcp_sink() -> Iterator[TcpSink]:
    sink = TcpSink()
    yield sink
    sink.close()


# Syslog over UDP and TCP -------------------------------------------------------------------


@sqlite_only
def test_udp_sends_one_rfc5424_datagram_per_message(server: Server, udp_sink: UdpSink) -> None:
    headers = server.enrolled_agent().headers()
    create_target(server, "udp", "eset-json", "udp", host="127.0.0.1", port=udp_sink.port)
    post_events(server, headers, started(0, 5, user="é中文"))

    def ours() -> list[SyslogMessage]:
        parsed = [checks.envelope(d.decode("utf-8"), "garrison") for d in list(udp_sink.datagrams)]
        found = [m for m in parsed if m.msgid == "component_started"]
        return found if len(found) >= 5 else []

    messages = wait_for(ours, timeout=15)
    assert len(messages) == 5, udp_sink.datagrams
    for datagram in udp_sink.datagrams:
        # One datagram, one whole message: no framing, no trailing newline, one record.
        assert not datagram.endswith(b"\n")
        assert not datagram[:1].isdigit()
        checks.eset_json(checks.envelope(datagram.decode("utf-8"), "garrison").msg)
    records = [json.loads(m.msg) for m in messages]
    assert [r["pid"] for r in records] == [0, 1, 2, 3, 4]
    assert {r["user"] for r in records} == {"é中文"}
    # facility user (1), severity from Information (6): <14>
    assert all((int(m.facility), int(m.severity)) == (1, 6) for m in messages)
    assert all(d.startswith(b"<14>1 ") for d in udp_sink.datagrams if b"component_started" in d)


@sqlite_only
def test_rfc3164_envelope_over_tcp(server: Server, tcp_sink: TcpSink) -> None:
    headers = server.enrolled_agent().headers()
    create_target(
        server, "bsd", "cef", "tcp", host="127.0.0.1", port=tcp_sink.port,
        options={"envelope": "rfc3164"},
    )  # fmt: skip
    post_events(server, headers, started(0, 3, user="line\nbreak"))
    post_events(
        server,
        headers,
        [{"type": "edr_alarm", "data": {"time": int(time.time()), "rulename": "x|y=z"}}],
    )

    def lines() -> list[str]:
        found = [line.decode("utf-8") for line in tcp_sink.lines()]
        return found if any("x|y" in line for line in found) else []

    received = wait_for(lines, timeout=15)
    assert received, tcp_sink.data()
    parsed = []
    for line in received:
        match = RFC3164.match(line)
        assert match, line
        assert match["month"] in MONTHS
        assert 1 <= int(match["day"]) <= 31
        assert match["host"] == socket.gethostname()
        assert "\ufeff" not in match["payload"]  # no BOM unless asked for
        parsed.append((int(match["pri"]), match, checks.cef(match["payload"])))
    started_events = [p for p in parsed if p[2]["name"] == "component_started"]
    assert len(started_events) == 3
    assert {pri for pri, _, _ in started_events} == {14}  # user.info
    # The line break of a value is escaped (CEF), so the record stays on one line.
    assert {p["extension"]["suser"] for _, _, p in started_events} == {"line\nbreak"}
    pri, match, alarm = next(
        p for p in parsed if p[2]["device"]["event_class_id"] == "EnterpriseInspectorAlert_Event"
    )
    assert pri == 8 + 3  # user.err: edr_alarm is an Error
    assert alarm["extension"]["garrisonRulename"] == "x|y=z"
    # The timestamp is the event's, in UTC, without a year (RFC 3164 has none).
    now = dt.datetime.now(dt.UTC)
    stamp = min(
        (
            dt.datetime.strptime(
                f"{year} {match['month']} {match['day'].strip()} {match['time']}",
                "%Y %b %d %H:%M:%S",
            ).replace(tzinfo=dt.UTC)
            for year in (now.year - 1, now.year)
        ),
        key=lambda moment: abs(now - moment),
    )
    assert abs(now - stamp) < dt.timedelta(minutes=5), (stamp, now)


@sqlite_only
def test_octet_counting_framing_and_bom(server: Server, tcp_sink: TcpSink) -> None:
    headers = server.enrolled_agent().headers()
    create_target(
        server, "octet", "eset-json", "tcp", host="127.0.0.1", port=tcp_sink.port,
        options={"framing": "octet", "bom": True},
    )  # fmt: skip
    # Non-ASCII: MSG-LEN counts octets, not characters.
    post_events(server, headers, started(0, 4, user="ünïcødé 中文 ✓"))

    def frames() -> list[bytes]:
        found = [f for stream in tcp_sink.data() for f in octet_frames(stream)]
        return found if sum(b"component_started" in f for f in found) >= 4 else []

    received = wait_for(frames, timeout=15)
    assert received, tcp_sink.data()
    # Nothing but frames: the stream is consumed exactly, no newline between them.
    for stream in tcp_sink.data():
        assert b"".join(str(len(f)).encode() + b" " + f for f in octet_frames(stream)) == stream
    records = []
    for frame in received:
        assert not frame.endswith(b"\n")
        message = checks.envelope(frame.decode("utf-8"), "garrison")
        # RFC 5424: PRI+VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD, then MSG, whose
        # first octets are the BOM.
        assert frame.split(b" ", 7)[7].startswith(BOM), frame[:120]
        assert message.msg.startswith("\ufeff")
        records.append(checks.eset_json(message.msg[1:]))
    assert pids(records) == [0, 1, 2, 3]
    assert {r["user"] for r in records if r["event_type"] == "component_started"} == {
        "ünïcødé 中文 ✓"
    }


# File and HTTP exporters ---------------------------------------------------------------------


@sqlite_only
def test_file_exporter_writes_ndjson_and_rotates(server: Server, tmp_path: Path) -> None:
    headers = server.enrolled_agent().headers()
    out = tmp_path / "siem" / "garrison.ndjson"
    create_target(
        server, "file", "eset-json", "file", path=str(out),
        options={"file_max_bytes": 1024, "file_keep": 2, "batch_size": 1},
    )  # fmt: skip
    post_events(server, headers, started(0, 40, user="rotation"))
    wait_for(lambda: out.exists() and b'"pid":39' in out.read_bytes(), timeout=15)

    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["garrison.ndjson", "garrison.ndjson.1", "garrison.ndjson.2"]
    files = [out.with_name("garrison.ndjson.2"), out.with_name("garrison.ndjson.1"), out]
    contents = [path.read_bytes() for path in files]
    lines = [raw.split(b"\n")[:-1] for raw in contents]
    longest = max(len(line) + 1 for chunk in lines for line in chunk)
    kept: list[dict[str, Any]] = []
    for path, raw, chunk in zip(files, contents, lines, strict=True):
        assert raw.endswith(b"\n")
        # NDJSON: one JSON object per line, each a whole record.
        kept.extend(checks.eset_json(line.decode("utf-8")) for line in chunk)
        # Rotated once it reached file_max_bytes: one message beyond it at most.
        assert len(raw) < 1024 + longest, (path.name, len(raw))
        if path != out:
            assert len(raw) >= 1024, (path.name, len(raw))
    # The two rotated files and the current one hold the newest events, in order; older ones
    # went with the files beyond file_keep.
    got = pids(kept)
    assert got == list(range(got[0], 40))
    assert got[0] > 0


def test_http_exporter_retries_a_500_until_a_200_and_loses_nothing(server: Server) -> None:
    sink = HttpSink(answers=[500, 500])
    try:
        headers = server.enrolled_agent().headers()
        create_target(server, "hook", "eset-json", "http", url=f"http://127.0.0.1:{sink.port}/in")
        post_events(server, headers, started(0, 10))  # one commit: one batch

        def delivered() -> list[int]:
            bodies = [body for status, _, body in list(sink.requests) if status == 200]
            records = [json.loads(line) for body in bodies for line in body.splitlines()]
            return pids(records) if len(pids(records)) >= 10 else []

        got = wait_for(delivered, timeout=20)
    finally:
        sink.close()
    assert got == list(range(10)), sink.requests
    statuses = [status for status, _, _ in sink.requests]
    assert statuses[:3] == [500, 500, 200]
    # The batch refused twice is sent again as it was: nothing lost, nothing reordered.
    assert sink.requests[0][2] == sink.requests[1][2] == sink.requests[2][2]
    for _, request_headers, body in sink.requests:
        assert request_headers["content-type"] == "application/x-ndjson"
        assert body.endswith(b"\n")
        for line in body.splitlines():
            checks.eset_json(line.decode("utf-8"))


# The test-send endpoint ---------------------------------------------------------------------


@sqlite_only
def test_test_send_to_a_listening_target_and_to_a_closed_port(
    server: Server, tcp_sink: TcpSink
) -> None:
    listening = create_target(
        server, "up", "cef", "tcp", host="127.0.0.1", port=tcp_sink.port, enabled=False
    )
    sent = server.admin.post(f"/export-targets/{listening['id']}/test")
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert body["sent"] is True
    line = wait_for(tcp_sink.lines, timeout=15)
    assert [raw.decode() + "\n" for raw in line] == [body["message"]]
    cef = checks.cef(checks.envelope(line[0].decode(), "garrison").msg)
    assert cef["device"]["event_class_id"] == "Threat_Event"
    assert cef["extension"]["cs1"] == "Garrison-Test-Event"

    port = free_port()  # nobody listens
    closed = create_target(server, "down", "cef", "tcp", host="127.0.0.1", port=port)
    failed = server.admin.post(f"/export-targets/{closed['id']}/test")
    error = assert_json_error(failed, 502, "export_test_failed")
    # Not "connection refused": the answer does not tell a closed port from others (the
    # server log has the reason; tests/security/test_export_confinement.py).
    assert error["error"] == NOT_DELIVERED

    assert server.admin.post("/export-targets/999999/test").status_code == 404


@pytest.mark.usefixtures("json_logs")
@sqlite_only
def test_test_send_with_an_unreadable_ca_file_is_not_delivered(server: Server) -> None:
    target = create_target(
        server, "tls", "cef", "tls", host="127.0.0.1", port=free_port(),
        options={"tls_ca": "/nonexistent/ca.pem"}, enabled=False,
    )  # fmt: skip
    failed = server.admin.post(f"/export-targets/{target['id']}/test")
    assert failed.status_code == 502, failed.text
    # Which file, and whether it exists, is for the server log only.
    assert failed.json()["error"] == NOT_DELIVERED


# The admin API: checks and roles ----------------------------------------------------------

VALID: dict[str, object] = {
    "name": "t",
    "format": "cef",
    "transport": "tcp",
    "host": "127.0.0.1",
    "port": 514,
}
INVALID: list[tuple[dict[str, object], str]] = [
    ({"format": "json"}, "format"),
    ({"transport": "smtp"}, "transport"),
    ({"host": ""}, "host"),
    ({"port": 0}, "port"),
    ({"port": 70000}, "port"),
    ({"transport": "file", "host": "", "port": 0}, "path"),
    ({"transport": "http", "url": "ftp://example.com/x"}, "url"),
    ({"transport": "http", "url": ""}, "url"),
    ({"options": {"colour": "blue"}}, "colour"),
    ({"options": {"leef_delimiter": "^^"}}, "leef_delimiter"),
    ({"options": {"min_severity": "Loud"}}, "min_severity"),
    ({"options": {"heartbeat_seconds": -1}}, "heartbeat_seconds"),
    ({"start_at": "yesterday"}, "start_at"),
]


@sqlite_only
def test_invalid_targets_are_refused_naming_the_field(server: Server) -> None:
    for change, name in INVALID:
        response = server.admin.post("/export-targets", {**VALID, **change})
        body = assert_json_error(response, 422, "invalid_input")
        assert body["field"].split(".")[-1] == name, (change, body)
        assert name in body["error"], (change, body)
    assert server.admin.get("/export-targets").json() == []

    # A change is checked the same way, and a refused change leaves the target as it was.
    target = create_target(server, "ok", "cef", "tcp", host="127.0.0.1", port=514)
    refused_changes: list[tuple[dict[str, object], str]] = [
        ({"port": 0}, "port"),
        ({"transport": "file"}, "path"),
        ({"options": {"colour": 1}}, "colour"),
    ]
    for change, name in refused_changes:
        response = server.admin.patch(f"/export-targets/{target['id']}", change)
        assert response.status_code == 422, (change, response.text)
        assert response.json()["field"].split(".")[-1] == name
    after = server.admin.get(f"/export-targets/{target['id']}").json()
    kept = ("name", "format", "transport", "host", "port", "path", "url", "options", "updated_at")
    assert {k: after[k] for k in kept} == {k: target[k] for k in kept}


@pytest.mark.parametrize(
    ("options", "name"),
    [
        pytest.param(
            {"event_types": ["no_such_event"]},
            "event_types",
        ),
        pytest.param(
            {"leef_delimiter": "|"},
            "leef_delimiter",
        ),
    ],
)
@sqlite_only
def test_option_errors_from_cross_checks_name_the_option(
    server: Server, options: dict[str, Any], name: str
) -> None:
    response = server.admin.post("/export-targets", {**VALID, "options": options})
    assert response.status_code == 422, response.text
    assert response.json()["field"].split(".")[-1] == name, response.json()


@pytest.mark.usefixtures("json_logs")
@sqlite_only
def test_renaming_onto_another_targets_name_is_a_conflict(server: Server) -> None:
    create_target(server, "first", "cef", "tcp", host="127.0.0.1", port=514)
    second = create_target(server, "second", "cef", "tcp", host="127.0.0.1", port=514)
    response = server.admin.patch(f"/export-targets/{second['id']}", {"name": "first"})
    assert response.status_code == 409, response.text
    assert response.json()["field"] == "name"


@sqlite_only
def test_a_viewer_reads_targets_but_cannot_change_them(server: Server) -> None:
    target = create_target(server, "ro", "cef", "tcp", host="127.0.0.1", port=514)
    for role in ("viewer", "operator"):
        user = server.admin.as_role(f"a-{role}", role)
        refused = user.post("/export-targets", {**VALID, "name": f"by-{role}"})
        assert_json_error(refused, 403, "forbidden")
        assert user.patch(f"/export-targets/{target['id']}", {"enabled": False}).status_code == 403
        assert user.post(f"/export-targets/{target['id']}/test").status_code == 403
        assert user.delete(f"/export-targets/{target['id']}").status_code == 403
        assert [t["name"] for t in user.get("/export-targets").json()] == ["ro"]
        assert user.get(f"/export-targets/{target['id']}").status_code == 200
    assert server.admin.get(f"/export-targets/{target['id']}").json()["enabled"] is True


# Filters, heartbeat, LEEF 2.0 ---------------------------------------------------------------


def label(record: dict[str, Any]) -> str:
    kind: str = record["event_type"]
    if kind == "component_started":
        return f"started:{record['pid']}"
    if kind == "EnterpriseInspectorAlert_Event":
        return f"alarm:{record['rulename']}"
    if kind == "station_reboot_required":
        return f"reboot:{record['product']}"
    return kind


def test_min_severity_event_types_and_groups_filters(server: Server, tmp_path: Path) -> None:
    outside, inside = server.enrolled_agent(), server.enrolled_agent()
    assert server.admin.post("/groups", {"name": "soc"}).status_code == 201
    add = server.admin.post("/groups/soc/stations", {"add": [inside.agent_id], "remove": []})
    assert add.status_code == 200, add.text
    files = {name: tmp_path / f"{name}.ndjson" for name in ("severity", "types", "groups")}
    filters: dict[str, dict[str, Any]] = {
        "severity": {"min_severity": "Error"},
        "types": {"event_types": ["component_started", "edr_alarm"]},
        "groups": {"groups": ["soc"]},
    }
    for name, options in filters.items():
        create_target(server, name, "eset-json", "file", path=str(files[name]), options=options)

    def events(agent_name: str, pid: int) -> list[dict[str, Any]]:
        now = int(time.time())
        return [
            *started(pid, 1),  # Information
            {"type": "station_reboot_required", "data": {"product": agent_name}},  # Warning
            {"type": "edr_alarm", "data": {"time": now, "rulename": agent_name}},  # Error
        ]

    post_events(server, outside.headers(), events("out", 1))
    post_events(server, inside.headers(), events("in", 2))  # the last: every filter passes it

    def read(name: str) -> list[str]:
        path = files[name]
        if not path.exists():
            return []
        return [label(json.loads(line)) for line in path.read_text().splitlines()]

    # Events go out in order, so once the last one is in, every earlier one is decided.
    for name in files:
        wait_for(partial(read, name), lambda labels: "alarm:in" in labels, timeout=15, what=name)
    assert read("severity") == ["alarm:out", "alarm:in"]
    assert read("types") == ["started:1", "alarm:out", "started:2", "alarm:in"]
    assert read("groups") == ["started:2", "reboot:in", "alarm:in"]


@sqlite_only
def test_heartbeat_on_an_idle_target(server: Server, tcp_sink: TcpSink) -> None:
    create_target(
        server, "idle", "cef", "tcp", host="127.0.0.1", port=tcp_sink.port,
        options={"heartbeat_seconds": 1},
    )  # fmt: skip

    def heartbeats() -> list[SyslogMessage]:
        found = [checks.envelope(line.decode(), "garrison") for line in tcp_sink.lines()]
        beats = [m for m in found if m.msgid == "HEARTBEAT"]
        return beats if len(beats) >= 2 else []

    beats = wait_for(heartbeats, timeout=15)
    assert len(beats) >= 2, tcp_sink.data()
    parsed = checks.cef(beats[0].msg)
    assert parsed["device"]["event_class_id"] == "HEARTBEAT"
    # Periodic, about once a second: not a burst.
    times = [at for at, chunk in tcp_sink.chunks if b"HEARTBEAT" in chunk]
    assert times[1] - times[0] >= 0.7, times


@sqlite_only
def test_leef2_declares_a_non_printable_delimiter_as_xhh(server: Server, tcp_sink: TcpSink) -> None:
    agent = server.enrolled_agent()
    create_target(
        server, "leef2", "leef2", "tcp", host="127.0.0.1", port=tcp_sink.port,
        options={"leef_delimiter": "\x1f"},
    )  # fmt: skip
    alert = {
        "name": "Bad\x1fname\twith^delims",
        "filepath": "/tmp/a b",
        "action": "quarantine",
        "module_name": "clamav",
        "detection_time": int(time.time()),
    }
    assert agent.alerts([alert]).status_code == 200

    def threat() -> str:
        payloads = [checks.envelope(line.decode(), "garrison").msg for line in tcp_sink.lines()]
        return next((p for p in payloads if "|Threat_Event|" in p), "")

    payload = wait_for(threat, timeout=15)
    assert payload, tcp_sink.data()
    header = payload.split("|")
    assert header[:2] == ["LEEF:2.0", "Garrison"]
    assert header[5] == "x1f"  # declared as xHH: the character itself cannot be read
    parsed = checks.leef(payload)
    attributes = payload.split("|", 6)[6]
    assert len(attributes.split("\x1f")) == len(parsed) - 4  # every attribute, split on it
    assert "\t" not in attributes
    assert parsed["threat_name"] == "Bad name with^delims"  # the delimiter became a space
    assert parsed["sev"] == "9"
