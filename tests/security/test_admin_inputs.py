"""Admin API inputs no route can store answer 422 naming the field, never 500 (issue 22,
item 6): integers beyond 64 bits, NUL and lone surrogates in text, times that overflow once
converted to UTC, host names the resolver cannot encode, a procedure set again after a
delete.  A 500 also dropped the client's keep-alive connection.

The walks below read the routes from the OpenAPI document, so a new route is covered as
soon as it exists.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from garrison.server.adminapi.inputs import ID_MAX, INT64_MAX, INT64_MIN
from garrison.server.export.models import ExportTarget
from tests.conftest import Server
from tests.live import start_server
from tests.support import assert_json_error

BIG = 2**64
NUL = "a\x00b"
SURROGATE = "a\ud800b"
METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def parameters(self, where: str) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p["in"] == where]

    def url(self, doc: dict[str, Any], **values: str) -> str:
        """The path with each parameter filled: ``values`` where given, else a well-formed
        value that names nothing (id 1 of an empty database, the text ``x``)."""
        url = self.path
        for param in self.parameters("path"):
            name = param["name"]
            default = "1" if _type(doc, param["schema"]) == "integer" else "x"
            url = url.replace("{" + name + "}", values.get(name, default))
        return url

    def json_body(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            return None
        return _resolve(doc, content["application/json"]["schema"])


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its ``$ref`` followed and an optional (``anyOf`` with null) unwrapped."""
    while True:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = doc["components"]["schemas"][name]
        elif "anyOf" in schema:
            options = [s for s in schema["anyOf"] if s.get("type") != "null"]
            schema = options[0]
        else:
            return schema


def _type(doc: dict[str, Any], schema: dict[str, Any]) -> str:
    return str(_resolve(doc, schema).get("type", ""))


def _integer_schemas(
    doc: dict[str, Any], schema: dict[str, Any], where: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every integer in a schema, properties and array items included, with its path."""
    schema = _resolve(doc, schema)
    kind = schema.get("type")
    if kind == "integer":
        yield where, schema
    elif kind == "array" and "items" in schema:
        yield from _integer_schemas(doc, schema["items"], f"{where}[]")
    elif kind == "object":
        for name, child in schema.get("properties", {}).items():
            yield from _integer_schemas(doc, child, f"{where}.{name}")


@pytest.fixture
def doc(server: Server) -> dict[str, Any]:
    response = server.client.get("/admin/v1/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(doc: dict[str, Any]) -> list[Operation]:
    found = [
        Operation(method.upper(), path, spec)
        for path, item in doc["paths"].items()
        for method, spec in item.items()
        if method in METHODS and path.startswith("/admin/v1")
    ]
    assert len(found) > 50, "the OpenAPI document lost its routes"
    return found


def request(
    server: Server, method: str, url: str, *, params: Any = None, body: Any = None
) -> httpx.Response:
    """``body`` as JSON with non-ASCII escaped, as most clients send it: a lone surrogate
    goes as ``\\ud800``, which UTF-8 could not carry raw."""
    headers = dict(server.admin.headers)
    content = None
    if body is not None:
        content = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    response: httpx.Response = server.client.request(
        method, url, params=params, content=content, headers=headers
    )
    return response


def assert_refused(response: httpx.Response, field: str, label: str) -> None:
    """422 with the project's JSON error body, its ``field`` naming ``field`` (or one of
    ``a|b``): a validation error says where, ``path.station_id``; the input check names
    the JSON path, ``alert_ids.0``."""
    assert response.status_code == 422, (label, response.status_code, response.text)
    body = assert_json_error(response, 422, "invalid_input")
    named = str(body.get("field", ""))
    assert any(named == f or named.endswith("." + f) for f in field.split("|")), (
        label,
        field,
        body,
    )


# Integers ----------------------------------------------------------------------------------

# FastAPI writes a nested schema's bounds as floats, and 2**63 - 1 as a float is 2**63.
_TOP = float(INT64_MAX)


def test_every_integer_in_the_admin_schema_fits_in_64_bits(doc: dict[str, Any]) -> None:
    """What the document promises: each integer parameter and body field has bounds inside
    int64, so a client (and the fuzzer) knows the limits."""
    unbounded = []
    for op in operations(doc):
        places = [
            (f"{p['in']}.{p['name']}", schema)
            for p in op.spec.get("parameters", [])
            for _, schema in _integer_schemas(doc, p["schema"], p["name"])
        ]
        body = op.json_body(doc)
        if body is not None:
            places += list(_integer_schemas(doc, body, "body"))
        for where, schema in places:
            low, high = schema.get("minimum"), schema.get("maximum")
            if low is None or high is None or low < INT64_MIN or high > _TOP:
                unbounded.append(f"{op.label} {where} [{low}, {high}]")
    assert unbounded == []


def test_integers_beyond_64_bits_in_paths_and_queries_are_refused(
    server: Server, doc: dict[str, Any]
) -> None:
    """``DELETE /export-targets/10000000000000000000``, ``GET /scans?offset=9999999999999999999``
    and their like on every route: 500 (``OverflowError``) before."""
    tried = 0
    for op in operations(doc):
        for param in op.parameters("path") + op.parameters("query"):
            if _type(doc, param["schema"]) != "integer":
                continue
            name = param["name"]
            for value in (str(BIG), "9999999999999999999"):
                if param["in"] == "path":
                    response = request(server, op.method, op.url(doc, **{name: value}))
                else:
                    # The route's other required parameters get a valid value, so the
                    # refusal is this one's.
                    params = {
                        other["name"]: "1"
                        for other in op.parameters("query")
                        if other.get("required") and other["name"] != name
                    }
                    params[name] = value
                    response = request(server, op.method, op.url(doc), params=params)
                assert_refused(response, name, op.label)
                tried += 1
    assert tried >= 20


def test_integers_beyond_64_bits_in_json_bodies_are_refused(
    server: Server, doc: dict[str, Any]
) -> None:
    """Typed fields (``alert_ids``, ``station_ids``…) and free-form ones (job ``params``,
    target ``options``, settings) alike: the first is the audit's own example, a 500."""
    tried = 0
    for op in operations(doc):
        body = op.json_body(doc)
        if body is None:
            continue
        url = op.url(doc)
        # Anywhere in any JSON body, even under a name the route does not know.
        assert_refused(request(server, op.method, url, body={"x": [1, BIG]}), "x.1", op.label)
        for name, schema in body.get("properties", {}).items():
            kind = _type(doc, schema)
            if kind == "integer":
                assert_refused(request(server, op.method, url, body={name: BIG}), name, op.label)
            elif kind == "array" and _type(doc, _resolve(doc, schema).get("items", {})) == (
                "integer"
            ):
                response = request(server, op.method, url, body={name: [BIG]})
                assert_refused(response, f"{name}.0", op.label)
            elif kind == "object":
                response = request(server, op.method, url, body={name: {"n": -BIG}})
                assert_refused(response, f"{name}.n", op.label)
            tried += 1
    assert tried >= 20
    acknowledged = server.admin.post(
        "/alerts/acknowledge", {"alert_ids": [2139063889266892056035328]}
    )
    assert_refused(acknowledged, "alert_ids.0", "acknowledge")


def test_ids_beyond_the_id_columns_are_refused(server: Server) -> None:
    """Id columns are 32-bit on PostgreSQL ("integer out of range", a 500 there): an id
    above them is refused on both backends alike, the largest one is simply not found."""
    for path in ("/stations/{}", "/jobs/{}", "/scans/{}", "/export-targets/{}"):
        assert_refused(
            server.admin.get(path.format(ID_MAX + 1)), "station_id|job_id|scan_id|target_id", path
        )
        assert_json_error(server.admin.get(path.format(ID_MAX)), 404)
    for name in ("station_id", "job_id"):
        assert_refused(server.admin.get("/alerts", **{name: ID_MAX + 1}), name, "alerts")
    acknowledged = server.admin.post("/alerts/acknowledge", {"alert_ids": [ID_MAX + 1]})
    assert_refused(acknowledged, "alert_ids.0", "acknowledge")
    # Offsets are 64-bit SQL on both backends.
    assert server.admin.get("/scans", offset=INT64_MAX).json()["items"] == []


@pytest.mark.parametrize("ref", ["99999999999999999999", "²", "9223372036854775808", "2147483648"])
def test_enrollment_key_refs_that_are_no_id_are_not_found(server: Server, ref: str) -> None:
    """``DELETE /enrollment-keys/{ref}`` takes an id or the key text: a number beyond the id
    column, or a digit ``int()`` refuses, was a 500."""
    assert_json_error(server.admin.delete(f"/enrollment-keys/{ref}"), 404)


# Text -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_unstorable_text_in_every_string_input_is_refused(
    server: Server, doc: dict[str, Any], bad: str
) -> None:
    """NUL went into the audit event (which refuses it) and PostgreSQL text (which cannot
    hold it): a group or export-target name with NUL was a 500."""
    tried = 0
    for op in operations(doc):
        for param in op.parameters("path") + op.parameters("query"):
            if _type(doc, param["schema"]) not in ("string", "array"):
                continue
            name = param["name"]
            if param["in"] == "path":
                if bad == SURROGATE:
                    continue  # a URL path is UTF-8 bytes: a lone surrogate cannot be sent
                response = request(server, op.method, op.url(doc, **{name: "a%00b"}))
            else:
                value = "a%00b" if bad == NUL else "a%ED%A0%80b"
                response = server.client.request(
                    op.method,
                    f"{op.url(doc)}?{name}={value}",
                    headers=server.admin.headers,
                )
            if bad == SURROGATE and param["in"] == "query":
                # Starlette decodes a query's bytes with replacement: never stored as sent.
                assert response.status_code < 500, (op.label, response.text)
            else:
                assert_refused(response, name, op.label)
            tried += 1
        body = op.json_body(doc)
        if body is None:
            continue
        for name, schema in body.get("properties", {}).items():
            if _type(doc, schema) == "string":
                response = request(server, op.method, op.url(doc), body={name: bad})
                assert_refused(response, name, op.label)
                tried += 1
    assert tried >= 20


def test_group_and_export_target_names_with_nul_leave_no_trace(server: Server) -> None:
    admin = server.admin
    assert_refused(admin.post("/groups", {"name": "ops\x00"}), "name", "group")
    target = {"name": "siem\x00", "format": "cef", "transport": "udp", "host": "127.0.0.1"}
    assert_refused(admin.post("/export-targets", {**target, "port": 514}), "name", "target")
    assert admin.get("/groups").json() == []
    assert admin.get("/export-targets").json() == []
    audited = {entry["action"] for entry in admin.get("/audit").json()}
    assert not audited & {"group.create", "export_target.create"}


def test_procedure_source_with_nul_is_refused(server: Server) -> None:
    response = server.client.put(
        "/admin/v1/procedures/threat_detected",
        content=b"return 1 -- \x00",
        headers={**server.admin.headers, "Content-Type": "text/plain"},
    )
    assert_refused(response, "source", "procedure text")
    response = server.admin.put("/procedures/threat_detected", {"source": "return '\x00'"})
    assert_refused(response, "source", "procedure json")
    assert_json_error(server.admin.get("/procedures/threat_detected"), 404)


@pytest.mark.parametrize(
    "path", ["/alerts", "/audit", "/events"], ids=["alerts", "audit", "events"]
)
def test_times_that_overflow_in_utc_are_refused(server: Server, path: str) -> None:
    """0001-01-01T00:00+01:00 is before year 1 once in UTC: the store's conversion raised
    OverflowError (alerts, audit)."""
    for since in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        assert_refused(server.admin.get(path, since=since), "since", path)
    assert server.admin.get(path, since="2020-01-01T00:00:00").status_code == 200


# Export test hosts ---------------------------------------------------------------------------


UNENCODABLE_HOSTS = ["\u0080x", "ü" * 70, "a..b", "a" * 64]


@pytest.mark.parametrize("host", UNENCODABLE_HOSTS, ids=["c1", "long-label", "empty", "a64"])
def test_export_hosts_the_resolver_cannot_encode_are_refused(server: Server, host: str) -> None:
    """Such a host failed every send with UnicodeError, not a transport error: the test
    endpoint answered 500 instead of 502."""
    target = {"name": "siem", "format": "cef", "transport": "tcp", "host": host, "port": 514}
    assert_refused(server.admin.post("/export-targets", target), "host", "create")
    # A private address: allowed by default (loopback needs the operator's setting).
    created = server.admin.post("/export-targets", {**target, "host": "10.255.0.1"})
    assert created.status_code == 201, created.text
    target_id = created.json()["id"]
    assert_refused(
        server.admin.patch(f"/export-targets/{target_id}", {"host": host}), "host", "patch"
    )


UNPARSABLE_URLS = [
    "http://\u0080x/hook",
    "http://a..b/hook",
    "https://" + "a" * 64 + "/",
    "http://127.0.0.1:99999/hook",
]


@pytest.mark.parametrize("url", UNPARSABLE_URLS, ids=["c1", "empty-label", "a64", "port"])
def test_webhook_urls_the_client_cannot_parse_are_refused(server: Server, url: str) -> None:
    target = {"name": "hook", "format": "eset-json", "transport": "http", "url": url}
    assert_refused(server.admin.post("/export-targets", target), "url", "create")


@pytest.mark.parametrize("transport", ["udp", "tcp", "http"])
def test_export_test_of_a_stored_unencodable_host_is_502(server: Server, transport: str) -> None:
    """A target stored before hosts and URLs were checked still answers its test with 502
    (the documented "could not deliver"), not 500."""
    with server.db.transaction() as session:
        target = ExportTarget(
            name=f"legacy-{transport}",
            format="cef",
            transport=transport,
            host="\u0080x",
            port=514,
            path="",
            url="http://\u0080x/hook",
            options={},
            enabled=False,
        )
        session.add(target)
        session.flush()
        target_id = target.id
    response = server.admin.post(f"/export-targets/{target_id}/test")
    assert_json_error(response, 502, "export_test_failed")


# Procedure versions -----------------------------------------------------------------------


def test_procedure_versions_keep_rising_across_a_delete(server: Server) -> None:
    """PUT, DELETE, PUT: the second PUT was a 500 every time (version 1 again, colliding
    with the history a delete keeps)."""
    admin = server.admin
    path = "/procedures/threat_detected"
    first = admin.put(path, {"source": "return 1"})
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    assert admin.delete(path).status_code == 204
    again = admin.put(path, {"source": "return 2"})
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 2
    assert admin.put(path, {"source": "return 3"}).json()["version"] == 3
    history = admin.get(f"{path}/versions").json()
    assert [(v["version"], v["source"]) for v in history] == [
        (3, "return 3"),
        (2, "return 2"),
        (1, "return 1"),
    ]


# Keep-alive --------------------------------------------------------------------------------


@pytest.mark.slow
def test_refused_inputs_keep_the_connection_alive(tmp_path: Path, database_url: str) -> None:
    """A 500 ended the client's keep-alive connection (the server closes it after an
    unhandled error); the audit's three examples now answer 422 on one connection, which
    then still answers."""
    live = start_server(tmp_path / "data", database_url)
    try:
        host, port = live.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        headers = {"Authorization": f"Bearer {live.token}", "Content-Type": "application/json"}
        asks = [
            ("GET", "/admin/v1/scans?offset=9999999999999999999", None),
            ("DELETE", "/admin/v1/export-targets/10000000000000000000", None),
            (
                "POST",
                "/admin/v1/alerts/acknowledge",
                b'{"alert_ids":[2139063889266892056035328]}',
            ),
            ("POST", "/admin/v1/groups", b'{"name":"ops\\u0000"}'),
        ]
        conn.connect()
        sock = conn.sock
        for method, path, body in asks:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            assert response.status == 422, (path, response.status, payload)
            assert response.getheader("connection", "").lower() != "close", path
        conn.request("GET", "/admin/v1/health")
        health = conn.getresponse()
        health.read()
        assert health.status == 200
        assert conn.sock is sock, "the server closed the connection"
        conn.close()
    finally:
        live.stop()
