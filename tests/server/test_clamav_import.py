"""ClamAV container import through the admin API, on both backends: verified with the keys
configured (a test key standing in for ClamAV's), members become rule sets, refusals are
JSON errors, and the hashes reach an agent's engine."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx

from garrison.agent.config import ScanConfig
from garrison.agent.scan.engine import Engine
from garrison.agent.scan.signatures import PACKAGED_DB, load_database
from tests import clamav_testkit as kit
from tests.conftest import Server, ServerFactory
from tests.support import assert_json_error

SAMPLE = b"only this container's hash names me\n"
FILES = {
    "daily.hdb": f"{hashlib.md5(SAMPLE).hexdigest()}:{len(SAMPLE)}:Test.Md5-1\n".encode(),
    "daily.hsb": f"{hashlib.sha256(SAMPLE).hexdigest()}:*:Test.Sha-1:73:255\n".encode(),
    "daily.ndb": b"Test.Body-1:0:*:6f6e6c79{-6}636f6e7461696e6572\nTest.Html:3:*:3c7363\n",
    "daily.ldb": b"Test.Logical;Target:0;0;aabb\nTest.Logical2;Target:0;0;ccdd\n",
}


def keyed_server(server_factory: ServerFactory, tmp_path: Path) -> Server:
    keys = tmp_path / "clamav-keys.json"
    keys.write_text(
        json.dumps(
            {
                "cvd": {"n": str(kit.cvd_key().n), "e": kit.cvd_key().e},
                "info": {"n": str(kit.info_key().n), "e": kit.info_key().e},
            }
        )
    )
    return server_factory(clamav_keys_file=keys)


def post(server: Server, data: bytes, **params: str) -> httpx.Response:
    response: httpx.Response = server.client.post(
        "/admin/v1/rules/import/clamav",
        params=params,
        content=data,
        headers={**server.admin.headers, "Content-Type": "application/octet-stream"},
    )
    return response


def test_a_container_imports_as_rule_sets(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = keyed_server(server_factory, tmp_path)
    response = post(server, kit.build("daily", FILES, version=27000), filename="daily.cvd")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["container"]["version"] == 27000
    assert body["container"]["format"] == "cvd"
    assert body["skipped"] == {"ldb": 2}
    made = {(r["name"], r["kind"], r["records"], r["file"]) for r in body["rulesets"]}
    assert made == {
        ("daily-hdb", "hashes", 1, "daily-hdb.hdb"),
        ("daily-hsb", "hashes", 1, "daily-hsb.hsb"),
        ("daily-ndb", "clamav-body", 2, "daily-ndb.ndb"),
    }
    listed = {r["name"] for r in server.admin.get("/rules").json()}
    assert {"daily-hdb", "daily-hsb", "daily-ndb"} <= listed

    # What an agent installs from these rule sets detects the sample.
    sigs = tmp_path / "installed"
    sigs.mkdir()
    for rule in body["rulesets"]:
        shown = server.admin.get(f"/rules/{rule['name']}").json()
        content = shown.get("content")
        if content is None:
            content = server.admin.get(f"/rules/{rule['name']}", version=1).json()["content"]
        (sigs / rule["file"]).write_text(content)
    (tmp_path / "scan").mkdir()
    (tmp_path / "scan" / "sample.bin").write_bytes(SAMPLE)
    db = load_database([PACKAGED_DB, sigs])
    assert db.skipped_summary == "ndb target type 3 (normalised HTML): 1"
    found = Engine(db, ScanConfig(exclude=[])).scan([str(tmp_path / "scan")]).detections
    assert {(d.threat, d.module) for d in found} == {
        ("Test.Sha-1", "garrison-hash"),
        ("Test.Body-1", "clamav-body"),
    }


def test_a_cld_imports_under_the_name_given(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = keyed_server(server_factory, tmp_path)
    data = kit.build("daily", {"daily.hsb": FILES["daily.hsb"]}, compressed=False)
    response = post(server, data, filename="daily.cld", name="clam")
    assert response.status_code == 201, response.text
    assert [r["name"] for r in response.json()["rulesets"]] == ["clam-hsb"]


def test_tampered_truncated_and_foreign_containers_are_refused(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = keyed_server(server_factory, tmp_path)
    data = bytearray(kit.build("daily", FILES))
    good = bytes(data)
    data[-40] ^= 1
    body = assert_json_error(post(server, bytes(data), filename="daily.cvd"), 422)
    assert "MD5" in body["message"]
    body = assert_json_error(post(server, good[:700], filename="daily.cvd"), 422)
    assert "truncated" in body["message"]
    body = assert_json_error(post(server, good, filename="daily.zip"), 422)
    assert ".cvd or .cld" in body["message"]
    assert server.admin.get("/rules").json() == []


def test_clamavs_own_key_refuses_a_test_container(server: Server) -> None:
    body = assert_json_error(post(server, kit.build("daily", FILES), filename="daily.cvd"), 422)
    assert "signature" in body["message"]
    assert server.admin.get("/rules").json() == []
