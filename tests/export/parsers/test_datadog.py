"""Datadog's ``eset-protect`` pipeline: ``occured`` as ``dd-MMM-yyyy HH:mm:ss``, the service
from ``event_type``, the status from a lookup of ``severity``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from tests.export.parsers import headers, samples
from tests.export.parsers.conftest import KINDS, Received

STATUS = {
    "Information": "info",
    "Notice": "notice",
    "Warning": "warning",
    "Error": "error",
    "Critical": "critical",
    "Fatal": "emergency",
}


def datadog(line: str) -> dict[str, Any] | None:
    header = headers.syslog(line)
    assert header is not None
    try:
        event = json.loads(header.message)
    except ValueError:
        return None
    if not isinstance(event, dict) or "event_type" not in event:
        return None
    return {
        "date": dt.datetime.strptime(event["occured"], "%d-%b-%Y %H:%M:%S"),
        "service": event["event_type"],
        "status": STATUS.get(event.get("severity", "")),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_eset_lines(kind: str) -> None:
    for name, line in samples.lines(kind).items():
        out = datadog(line)
        assert out is not None, name
        assert out["service"] == name, name
        assert out["status"], name


def test_garrison_lines(received: Received) -> None:
    for kind in KINDS:
        services = set()
        for line in received.of("eset-json", kind):
            out = datadog(line)
            assert out is not None, line
            assert out["status"] is not None, line
            services.add(out["service"])
        assert services == set(samples.SEVEN)


def test_garrison_own_types_get_no_service(received: Received) -> None:
    own = [line for line in received.lines["own"] if "garrison_event_type" in line]
    assert own
    assert all(datadog(line) is None for line in own)
