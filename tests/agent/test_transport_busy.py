"""The agent's transport turns 429 and 503 into BusyError with the server's Retry-After."""

from __future__ import annotations

import httpx
import pytest

from garrison.agent.errors import BusyError, RefusedError
from garrison.agent.transport import Identity, Transport, retry_after


def answering(status: int, headers: dict[str, str]) -> Transport:
    transport = Transport("http://server.test", Identity("u", 1, "tok"))
    body = b'{"error":"busy","message":"busy","code":"overloaded"}'
    transport.client = httpx.Client(
        transport=httpx.MockTransport(
            lambda _r: httpx.Response(status, headers=headers, content=body)
        )
    )
    return transport


@pytest.mark.parametrize("status", [429, 503])
def test_busy_answers_carry_retry_after(status: int) -> None:
    with answering(status, {"Retry-After": "7"}) as transport, pytest.raises(BusyError) as caught:
        transport.request("POST", "events", json_body=[])
    assert caught.value.retry_after == 7.0
    assert caught.value.status == status


def test_other_refusals_stay_refusals() -> None:
    with answering(400, {}) as transport, pytest.raises(RefusedError):
        transport.request("POST", "events", json_body=[])


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("3", 3.0), ("nonsense", None), ("-1", None), ("99999", 300.0)],
)
def test_retry_after_values(header: str | None, seconds: float | None) -> None:
    assert retry_after(header) == seconds
