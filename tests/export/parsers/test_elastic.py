"""Elastic's ``eset_protect`` integration, ``event`` data stream: Beats' syslog parser (any
app name, either envelope) hands the MSG to the ingest pipeline, whose steps are ported:
``gsub ^\\xEF\\xBB\\xBF`` (a BOM mis-decoded as Latin-1; a real U+FEFF stays), ``json`` only
if the message starts with ``{"``, else the plain-text grok patterns (whose failure is a
``pipeline_error``), ``event.kind`` ``event`` for ``Audit_Event`` and ``alert`` otherwise,
the category per type, ``occured`` as ``dd-MMM-yyyy HH:mm:ss``, ``file.*`` only when
``object_type`` is ``file`` in any case, and a plain ``HEARTBEAT`` recognised."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest

from tests.export.parsers import headers, samples
from tests.export.parsers.conftest import KINDS, Received

CATEGORIES = {
    "HipsAggregated_Event": "intrusion_detection",
    "FirewallAggregated_Event": "intrusion_detection",
    "Threat_Event": "threat",
    "FilteredWebsites_Event": "web",
    "BlockedFiles_Event": "file",
}
_PLAIN = (
    re.compile(r"Detection type: .* Detection name: .* Computer name: \S+ Logged user: .*"),
    re.compile(r"^.*\s+\S+ \d+/\d+/\d+, .* File .*$"),
)


def pipeline(message: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"errors": []}
    message = re.sub("^\u00ef\u00bb\u00bf", "", message)  # gsub on the Latin-1 bytes only
    if message == "HEARTBEAT":
        return {"heartbeat": True, "errors": []}
    fields: dict[str, Any] | None = None
    if message.startswith('{"'):
        try:
            fields = json.loads(message)
        except ValueError as exc:
            doc["errors"].append(f"json: {exc}")
    elif not any(p.search(message) for p in _PLAIN):
        doc["errors"].append("grok: no pattern matched")
    event_type = (fields or {}).get("event_type")
    doc["kind"] = "event" if event_type == "Audit_Event" else "alert"
    doc["category"] = CATEGORIES.get(str(event_type))
    doc["type"] = event_type
    if fields and fields.get("occured"):
        try:
            doc["timestamp"] = dt.datetime.strptime(fields["occured"], "%d-%b-%Y %H:%M:%S")
        except ValueError as exc:
            doc["errors"].append(f"date: {exc}")
    if fields and str(fields.get("object_type", "")).lower() == "file":
        doc["file.path"] = fields.get("object_uri")
    if fields and (
        event_type == "BlockedFiles_Event" or str(fields.get("object_type", "")).lower() == "file"
    ):
        doc["file.hash.sha1"] = str(fields.get("hash", "")).lower() or None
    if doc["errors"]:
        doc["kind"] = [doc["kind"], "pipeline_error"]
    return doc


def elastic(line: str) -> dict[str, Any]:
    header = headers.syslog(line)
    assert header is not None, line  # Beats' syslog parser reads both envelopes
    return pipeline(header.message)


@pytest.mark.parametrize("kind", KINDS)
def test_eset_lines(kind: str) -> None:
    for name, line in samples.lines(kind).items():
        doc = elastic(line)
        assert doc["errors"] == [], (name, doc)
        assert doc["kind"] == ("event" if name == "Audit_Event" else "alert")
        assert doc["type"] == name
    assert elastic(samples.HEARTBEAT) == {"heartbeat": True, "errors": []}
    # A real U+FEFF is not the gsub's pattern: the message is then not JSON to it.
    bom = elastic(samples.rfc5424(samples.JSON["Threat_Event"], bom=True))
    assert "pipeline_error" in bom["kind"]


def test_garrison_lines(received: Received) -> None:
    for kind in KINDS:
        docs = {}
        for line in received.of("eset-json", kind):
            doc = elastic(line)
            assert doc["errors"] == [], (line, doc)
            docs[doc["type"]] = doc
        assert set(docs) == set(samples.SEVEN), kind
        for name in samples.SEVEN:
            eset = elastic(samples.lines(kind)[name])
            assert (docs[name]["kind"], docs[name]["category"]) == (eset["kind"], eset["category"])
        assert docs["Threat_Event"]["file.path"] == "file:///tmp/eicar.com"


def test_garrison_heartbeat(received: Received) -> None:
    beats = [line for line in received.lines["heartbeat"] if line.endswith("HEARTBEAT")]
    assert beats
    header = headers.syslog(beats[0])
    assert header is not None
    assert (header.facility, header.severity, header.program) == (23, 6, "ERAServer")
    assert elastic(beats[0]) == {"heartbeat": True, "errors": []}
