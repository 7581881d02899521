"""Bad input gets a JSON error, never HTML, never a stack trace.

The Armadito agent parses every error body as JSON and crashes on anything else, so this holds
on the agent API as much as on the admin API: malformed JSON, unknown paths, wrong methods,
oversized bodies (announced or streamed) and unexpected server errors alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from garrison.server.jobs import service as jobs_service
from garrison.server.states import service as states_service
from tests.conftest import Server, ServerFactory
from tests.support import ArmaditoAgent, assert_json_error

MALFORMED = [b"{not json", b'{"agent_id": 1,', b"\xff\xfe\x00garbage", b"[" * 100_000]


@pytest.mark.parametrize("body", MALFORMED, ids=["brace", "truncated", "binary", "deep"])
def test_malformed_json_on_the_agent_api(
    server: Server, agent_a: ArmaditoAgent, body: bytes
) -> None:
    headers = agent_a.headers()
    for path in ("/api/agents", "/api/states", "/api/jobs", "/api/alerts"):
        response = server.client.post(path, content=body, headers=headers)
        assert_json_error(response, 400, "malformed_request")
    assert server.admin.get(f"/stations/{agent_a.agent_id}/state").status_code == 404
    assert server.admin.get("/stations").json()["total"] == 1


@pytest.mark.parametrize("body", MALFORMED, ids=["brace", "truncated", "binary", "deep"])
def test_malformed_json_on_the_admin_api(server: Server, body: bytes) -> None:
    headers = {**server.admin.headers, "Content-Type": "application/json"}
    for path in ("/admin/v1/enrollment-keys", "/admin/v1/groups", "/admin/v1/auth/login"):
        response = server.client.post(path, content=body, headers=headers)
        assert_json_error(response, 400)
    assert server.admin.get("/groups").json() == []
    assert len(server.admin.get("/enrollment-keys").json()) == 1  # the first-start key


def test_wrong_json_shapes_are_json_errors(server: Server, agent_a: ArmaditoAgent) -> None:
    headers = agent_a.headers()
    for body in (b"[]", b'"text"', b"42", b"null", b'{"task": 5}', b'{"uuid": []}'):
        response = server.client.post("/api/states", content=body, headers=headers)
        assert_json_error(response, 422)
    admin = server.admin
    shapes: list[object] = [[], {"uses": "many"}, {"uses": 0}, {"uses": 1, "unexpected": True}]
    for shape in shapes:
        assert_json_error(admin.post("/enrollment-keys", shape), 422)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/nothing-here"),
        ("POST", "/api/nothing-here"),
        ("GET", "/api"),
        ("GET", "/admin/v1/nothing-here"),
        ("POST", "/admin/v1/nothing-here"),
        ("GET", "/admin/v1/jobs/1/nothing"),
        ("GET", "/nothing-here"),
        ("GET", "/api/../etc/passwd"),
    ],
)
def test_unknown_path(server: Server, method: str, path: str) -> None:
    for headers in ({}, server.admin.headers):
        response = server.client.request(method, path, headers=headers)
        assert_json_error(response, 404, "not_found")


def test_unknown_object_on_the_admin_api(server: Server) -> None:
    for path in ("/jobs/999999", "/stations/999999", "/stations/999999/state"):
        assert_json_error(server.admin.get(path), 404)
    assert_json_error(server.admin.get("/jobs/not-a-number"), 422)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/jobs"),
        ("PUT", "/api/jobs"),
        ("GET", "/api/agents"),
        ("PATCH", "/api/states"),
        ("GET", "/api/alerts"),
        ("PUT", "/admin/v1/health"),
        ("DELETE", "/admin/v1/jobs"),
        ("PUT", "/admin/v1/enrollment-keys"),
        ("GET", "/admin/v1/auth/login"),
    ],
)
def test_wrong_method(server: Server, method: str, path: str) -> None:
    response = server.client.request(method, path, headers=server.admin.headers)
    assert_json_error(response, 405, "method_not_allowed")
    assert response.headers.get("allow"), response.headers


LIMIT = 2048


@pytest.fixture
def small(server_factory: ServerFactory) -> Server:
    return server_factory(max_body_bytes=LIMIT)


def padded_state(agent: ArmaditoAgent, size: int) -> bytes:
    envelope = agent.envelope(
        "State",
        {"dbinfo": {"global_status": "up-to-date", "modules": []}, "avdetails": []},
    )
    envelope["padding"] = ""
    raw = json.dumps(envelope)
    envelope["padding"] = "x" * (size - len(raw))
    body = json.dumps(envelope).encode()
    assert len(body) == size
    return body


def chunks(body: bytes, size: int = 512) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("streamed", [False, True], ids=["announced", "streamed"])
def test_body_over_the_limit_on_the_agent_api(small: Server, streamed: bool) -> None:
    agent = small.enrolled_agent()
    # Control: just under the limit is served.
    assert (
        agent.client.post(
            "/api/states", content=padded_state(agent, LIMIT - 10), headers=agent.headers()
        ).status_code
        == 200
    )
    assert small.admin.delete(f"/stations/{agent.agent_id}").status_code == 204
    agent = small.enrolled_agent()

    body = padded_state(agent, LIMIT * 4)
    for path in ("/api/states", "/api/agents", "/api/alerts"):
        content = chunks(body) if streamed else body
        response = agent.client.post(path, content=content, headers=agent.headers())
        assert_json_error(response, 413, "payload_too_large")
    assert small.admin.get(f"/stations/{agent.agent_id}/state").status_code == 404
    assert small.admin.get("/stations").json()["total"] == 1


@pytest.mark.parametrize(
    "streamed",
    [False, True],
    ids=["announced", "streamed"],
)
def test_body_over_the_limit_on_the_admin_api(small: Server, streamed: bool) -> None:
    body = json.dumps({"name": "big", "description": "x" * (LIMIT * 4)}).encode()
    headers = {**small.admin.headers, "Content-Type": "application/json"}
    for path in ("/admin/v1/groups", "/admin/v1/enrollment-keys", "/admin/v1/auth/login"):
        content = chunks(body) if streamed else body
        response = small.client.post(path, content=content, headers=headers)
        assert_json_error(response, 413, "payload_too_large")
    assert small.admin.get("/groups").json() == []


@pytest.fixture
def json_logs() -> Iterator[None]:
    """JSON log lines as ``garrison serve`` writes them: structlog's unconfigured console
    renderer spends seconds drawing each traceback with its locals."""
    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    )
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.mark.usefixtures("json_logs")
def test_unexpected_error_is_an_opaque_json_500(
    server: Server, agent_a: ArmaditoAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "internal-detail-that-must-not-leak"

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError(secret)

    monkeypatch.setattr(states_service, "record", boom)
    monkeypatch.setattr(jobs_service, "search", boom)

    for response in (agent_a.state(), server.admin.get("/jobs")):
        assert_json_error(response, 500, "internal_error")
        assert secret not in response.text
        assert "RuntimeError" not in response.text
    assert server.admin.get(f"/stations/{agent_a.agent_id}/state").status_code == 404
