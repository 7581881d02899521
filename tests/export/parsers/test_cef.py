"""ESET's CEF as ArcSight-style parsers read it: ``CEF:0|ESET|Protect|<version>|<class id>|
<description>|<severity>|``; the class id numeric in its category's hundred (100-199
threats, 200-299 firewall…), the severity one of 2/3/5/7/8/10, ``cat`` one of ESET's
categories, ``rt`` as ``MMM dd yyyy HH:mm:ss``, ``dvc`` the IPv4 address and ``c6a1`` the
IPv6 one, labelled ``Device IPv6 Address``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import cefp

from garrison.server.export import formats
from garrison.server.export.mapping import StationInfo, build
from tests.export.parsers import headers, samples
from tests.export.parsers.conftest import KINDS, Received

NOW = dt.datetime(2022, 1, 18, 14, 46, tzinfo=dt.UTC)
CATEGORIES = {
    "ESET Threat Event": 100,
    "ESET Firewall Event": 200,
    "ESET HIPS Event": 300,
    "ESET RA Audit Event": 400,
    "ESET Inspect Event": 500,
    "ESET Blocked File Event": 600,
    "ESET Filtered Website Event": 700,
}


def eset_cef(payload: str) -> dict[str, Any] | None:
    parsed: dict[str, Any] = cefp.parse(payload)
    device, ext = parsed["device"], parsed["extension"]
    if (parsed["version"], device["vendor"], device["product"]) != ("0", "ESET", "Protect"):
        return None
    if int(parsed["severity"]) not in (2, 3, 5, 7, 8, 10):
        return None
    base = CATEGORIES.get(ext.get("cat", ""))
    if base is None or not base <= int(device["event_class_id"]) < base + 100:
        return None
    dt.datetime.strptime(ext["rt"], "%b %d %Y %H:%M:%S")
    if "c6a1" in ext and ext.get("c6a1Label") != "Device IPv6 Address":
        return None
    return parsed


def test_eset_line() -> None:
    parsed = eset_cef(samples.CEF)
    assert parsed is not None
    assert parsed["extension"]["dvc"] == "10.0.12.59"


def test_garrison_lines(received: Received) -> None:
    for kind in KINDS:
        cats = set()
        for line in received.of("cef", kind):
            header = headers.syslog(line)
            assert header is not None
            parsed = eset_cef(header.message)
            assert parsed is not None, line
            cats.add(parsed["extension"]["cat"])
            assert "dvchost" in parsed["extension"]
        assert cats == set(CATEGORIES), kind


def test_garrisons_own_cef_is_not_esets() -> None:
    record = build("threat_detected", 4, NOW, {"virus": "V"}, StationInfo("u", "h"))
    assert eset_cef(formats.cef(record)) is None
