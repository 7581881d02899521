"""A small in-test server speaking CONTENT-WIRE.md's agent side (enrollment keys, the
Getjobs ``content`` field, the signed manifest, files with Range and line deltas), with knobs
for the faults: tampered bytes, a truncated body, a foreign server id, a replayed serial.
It also serves Getjobs' ``jobs`` and RESPONSE-WIRE.md's file upload (``PUT /api/files/``)
with its checks: the station's job, the cap, the hash.

It is a real HTTP server on a loopback port, so the agent's own transport is what is tested.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from garrison.agent.content.wire import canonical, key_id, manifest_sha256

EXT = {
    "yara": "yar", "hashes": "hsb", "ioc": "ioc", "blocklist": "blk", "clamav-body": "ndb",
    "script": "script",
}  # fmt: skip


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Key:
    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def raw(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def id(self) -> str:
        return key_id(self.raw)

    def sign(self, value: Any) -> str:
        return base64.b64encode(self.private.sign(canonical(value))).decode()

    def public(self) -> dict[str, str]:
        return {"key_id": self.id, "public_key": base64.b64encode(self.raw).decode()}


@dataclass
class RuleSet:
    name: str
    kind: str
    versions: list[bytes] = field(default_factory=list)


class FakeContentServer:
    def __init__(self) -> None:
        self.server_id = "11111111-2222-3333-4444-555555555555"
        self.keys = [Key()]
        self.rotations: list[dict[str, Any]] = []
        self.rulesets: dict[str, RuleSet] = {}
        self.serial = 1
        self.allow_unsigned = False
        self.files: dict[str, bytes] = {}  # every version ever, by sha256
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.posted: list[tuple[str, Any]] = []
        self.envelope_override: dict[str, Any] | None = None
        # Faults
        self.tamper: set[str] = set()  # sha256 whose bytes are served altered
        self.truncate_at: dict[str, int] = {}  # sha256 -> serve only this many bytes (once)
        self.no_delta = False
        self.bad_delta = False
        self.manifest_server_id: str | None = None
        self._issued = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
        # Response (RESPONSE-WIRE.md): jobs handed out once by the next Getjobs, uploads.
        self.jobs: list[dict[str, Any]] = []
        self.upload_jobs: set[int] = set()  # the job ids this station may upload for
        self.upload_alerts: set[str] = set()  # alert uuids accepted ("" in it: none)
        self.upload_cap = 1 << 30
        self.uploads: dict[str, bytes] = {}
        self.upload_queries: list[dict[str, list[str]]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the repository ----------------------------------------------------------------------

    def put(self, name: str, kind: str, content: str | bytes) -> str:
        data = content.encode() if isinstance(content, str) else content
        with self.lock:
            rs = self.rulesets.setdefault(name, RuleSet(name, kind))
            rs.versions.append(data)
            sha = hashlib.sha256(data).hexdigest()
            self.files[sha] = data
            self.serial += 1
            self._issued += dt.timedelta(minutes=1)
        return sha

    def bump(self) -> None:
        with self.lock:
            self.serial += 1
            self._issued += dt.timedelta(minutes=1)

    def manifest(self) -> dict[str, Any]:
        files = []
        for rs in self.rulesets.values():
            data = rs.versions[-1]
            files.append(
                {
                    "name": f"{rs.name}.{EXT[rs.kind]}",
                    "ruleset": rs.name,
                    "kind": rs.kind,
                    "version": len(rs.versions),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "records": sum(1 for line in data.splitlines() if line.strip()),
                }
            )
        return {
            "format": 1,
            "server_id": self.manifest_server_id or self.server_id,
            "serial": self.serial,
            "issued": iso(self._issued),
            "station_group": None,
            "policy": {"allow_unsigned_sources": self.allow_unsigned},
            "files": sorted(files, key=lambda f: f["name"]),
        }

    def envelope(self) -> dict[str, Any]:
        if self.envelope_override is not None:
            return self.envelope_override
        manifest = self.manifest()
        key = self.keys[-1]
        return {
            "manifest": manifest,
            "signature": key.sign(manifest),
            "key_id": key.id,
            "rotations": list(self.rotations),
        }

    def rotate(self, overlap: dt.timedelta = dt.timedelta(hours=168)) -> Key:
        old, new = self.keys[-1], Key()
        now = dt.datetime.now(dt.UTC)
        statement = {
            "type": "key-rotation",
            "old_key_id": old.id,
            "new_key_id": new.id,
            "new_public_key": base64.b64encode(new.raw).decode(),
            "issued": iso(now),
            "old_key_valid_until": iso(now + overlap),
        }
        self.rotations.append({"statement": statement, "signature": old.sign(statement)})
        self.keys.append(new)
        self.bump()
        return new

    def announcement(self) -> dict[str, Any]:
        envelope = self.envelope()
        return {"serial": envelope["manifest"]["serial"], "manifest_sha256": manifest_sha256(
            envelope["manifest"]
        )}  # fmt: skip

    def enrollment(self) -> dict[str, Any]:
        return {
            "agent_id": 7,
            "agent_token": "tok",
            "scheduler_id": 0,
            "server_id": self.server_id,
            "content_keys": [k.public() for k in self.keys],
        }

    def file_requests(self) -> Iterator[tuple[str, dict[str, str]]]:
        for method, path, headers in self.requests:
            if method == "GET" and path.startswith("/api/content/files/"):
                yield path, headers

    # -- HTTP ----------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                fake.requests.append(("POST", self.path, dict(self.headers)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                fake.posted.append((urlparse(self.path).path, body))
                if self.path.startswith("/api/agents"):
                    self._json(200, fake.enrollment())
                else:
                    self._json(200, {})

            def do_GET(self) -> None:
                url = urlparse(self.path)
                fake.requests.append(("GET", url.path, dict(self.headers)))
                if self.headers.get("authorization") != "Bearer tok":
                    self._json(401, {"error": "unauthorized", "message": "no token"})
                elif url.path == "/api/jobs":
                    with fake.lock:
                        jobs, fake.jobs = fake.jobs, []
                    self._json(200, {"jobs": jobs, "content": fake.announcement()})
                elif url.path == "/api/content/manifest":
                    envelope = fake.envelope()
                    etag = f'"{manifest_sha256(envelope["manifest"])}"'
                    if self.headers.get("if-none-match") == etag:
                        self.send_response(304)
                        self.send_header("ETag", etag)
                        self.end_headers()
                        return
                    self._json(200, envelope, {"ETag": etag})
                elif url.path.startswith("/api/content/files/"):
                    self._file(url.path.rsplit("/", 1)[1], parse_qs(url.query))
                else:
                    self._json(404, {"error": "not_found", "message": url.path})

            def do_PUT(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                fake.requests.append(("PUT", url.path, dict(self.headers)))
                length = int(self.headers.get("content-length", -1))
                if self.headers.get("authorization") != "Bearer tok":
                    self._json(401, {"error": "unauthorized", "message": "no token", "code": 401})
                    return
                if not url.path.startswith("/api/files/") or length < 0:
                    self._json(400, {"error": "bad_request", "message": "no length", "code": 400})
                    return
                sha = url.path.rsplit("/", 1)[1]
                job = (query.get("job_id") or [""])[0]
                alert = (query.get("alert") or [""])[0]
                allowed = (job.isdigit() and int(job) in fake.upload_jobs) or (
                    alert and alert in fake.upload_alerts
                )
                if length > fake.upload_cap:
                    self._json(413, {"error": "too_big", "message": "over the cap", "code": 413})
                    return
                data = self.rfile.read(length)
                fake.upload_queries.append(query)
                if not allowed:
                    self._json(403, {"error": "forbidden", "message": "not this station's job",
                                     "code": 403})  # fmt: skip
                elif hashlib.sha256(data).hexdigest() != sha:
                    self._json(400, {"error": "hash_mismatch", "message": "hash mismatch",
                                     "code": 400})  # fmt: skip
                else:
                    known = sha in fake.uploads
                    fake.uploads[sha] = data
                    self._json(200 if known else 201,
                               {"status": "ok", "sha256": sha, "size": len(data)})  # fmt: skip

            def _file(self, sha: str, query: dict[str, list[str]]) -> None:
                data = fake.files.get(sha)
                if data is None:
                    self._json(404, {"error": "not_found", "message": "no such file"})
                    return
                base = (query.get("base") or [""])[0]
                if base and base in fake.files and not fake.no_delta:
                    old = fake.files[base].decode().splitlines()
                    new = data.decode().splitlines()
                    remove = [line for line in old if line not in set(new)]
                    add = [line for line in new if line not in set(old)]
                    if fake.bad_delta:
                        add = [*add, "ffff:1:Injected"]
                    self._json(
                        200,
                        {
                            "format": "line-delta-1",
                            "base": base,
                            "target": sha,
                            "remove": remove,
                            "add": add,
                        },
                    )
                    return
                if sha in fake.tamper:
                    data = data[:-2] + b"X\n"
                start = 0
                rng = self.headers.get("range", "")
                if rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                body = data[start:]
                cut = fake.truncate_at.pop(sha, None)
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler
