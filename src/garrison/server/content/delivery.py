"""Content delivery on one node: the keys, the current serial, and caches that keep the
check-in free of content queries.

A Getjobs answer for a Garrison agent carries ``content: {serial, manifest_sha256}``.  Both
depend only on the serial and the station's scope (its kind and groups), and every change
to either bumps the serial, so this node caches, per station, the field of the serial it
was computed for: a check-in reads it without a query while the serial holds.  The serial
known here moves at once after a local commit (``Signal.CONTENT_CHANGED``) and, for a
change made on another node, within ``watch_seconds`` (``run`` reads the one row).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from sqlalchemy import select

from garrison.server.audit.actor import Actor
from garrison.server.content import formats, service
from garrison.server.content.models import (
    DEFAULT_SCOPE,
    ContentSerial,
    ContentServer,
    RuleSet,
    RuleVersion,
)
from garrison.server.content.signing import KeyRing, canonical, sign
from garrison.server.errors import ConflictError, ForbiddenError, NotFoundError
from garrison.server.stations.credentials import AgentCredential, named_station
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database

log = structlog.get_logger("garrison.content")

MAX_FILE_CACHE_BYTES = 256 * 1024 * 1024
MAX_DELTAS = 32


@dataclass(frozen=True)
class Built:
    """A station's manifest at one serial, signed."""

    manifest: dict[str, Any]
    sha256: str
    envelope: bytes  # the JSON the agent gets


@dataclass(frozen=True)
class FileAnswer:
    """``data`` as octet-stream bytes, or a line delta (``delta`` True: JSON)."""

    data: bytes
    delta: bool


class ContentDelivery:
    def __init__(
        self, db: Database, ring: KeyRing, watch_seconds: float = 2.0, preload: int = 0
    ) -> None:
        self.db = db
        self.ring = ring
        self.watch_seconds = watch_seconds
        # Up to this many stations' check-in fields are built in bulk for each new serial.
        self.preload = preload
        self._preloaded = 0  # the serial of the last bulk load
        self._forgets = 0  # moved by forget: a bulk load read before it is not stored
        self.serial = 0  # 0: not known yet (every check-in reads it)
        self._server_id = ""
        self._lock = threading.Lock()
        self._initialised = False
        # station -> (serial, content field or None for an Armadito station)
        self._fields: dict[int, tuple[int, dict[str, Any] | None]] = {}
        # (serial, scope) -> Built; (serial) -> snapshot row values
        self._built: dict[tuple[int, str], Built] = {}
        self._snapshots: dict[int, tuple[dt.datetime, str, dict[str, Any]]] = {}
        self._files: OrderedDict[str, bytes] = OrderedDict()
        self._files_bytes = 0
        self._deltas: OrderedDict[tuple[str, str], bytes | None] = OrderedDict()

    # -- start-up ------------------------------------------------------------------------

    def initialise(self) -> None:
        """The server row, the first key, serial 1's snapshot: once per process (and again
        should a test truncate the tables)."""
        public = self.ring.public_b64(self.ring.current_id)
        if public is None:
            raise NotFoundError("this node has no content key")
        with self.db.transaction() as session:
            service.ensure_initialised(session, public, self.ring.current_id)
            row = service.server_row(session)
            self._server_id = row.server_id
            serial = row.serial
        self._initialised = True
        self._set_serial(serial)

    def _ready(self) -> None:
        if not self._initialised:
            self.initialise()

    def initialise_once(self) -> None:
        """Before an administrative change: the state it changes exists."""
        self._ready()

    @property
    def server_id(self) -> str:
        self._ready()
        return self._server_id

    # -- the serial ------------------------------------------------------------------------

    def _set_serial(self, serial: int) -> None:
        with self._lock:
            if serial != self.serial:
                self.serial = serial
                # Older serials' manifests are rebuilt on demand (the files endpoint).
                self._built = {k: v for k, v in self._built.items() if k[0] == serial}

    def read_serial(self) -> int:
        with self.db.reading() as session:
            row = session.get(ContentServer, 1)
            if row is None:
                self._initialised = False
                return 0
            return int(row.serial)

    def changed(self, _ids: Iterable[int] = ()) -> None:
        """After a local commit that bumped the serial (Signal.CONTENT_CHANGED)."""
        try:
            self._set_serial(self.read_serial())
        except Exception:
            self.serial = 0  # unknown: check-ins read it again
            log.exception("could not read the content serial")

    def forget(self, station_ids: Iterable[int]) -> None:
        """Stations re-enrolled or deleted: their kind may change."""
        with self._lock:
            self._forgets += 1
            for sid in station_ids:
                self._fields.pop(sid, None)

    async def run(self) -> None:
        """Follow the serial moved by other nodes; build the fields of the fleet in bulk
        for each new serial (else each station's first check-in after a change reads)."""
        while True:
            await asyncio.sleep(self.watch_seconds)
            try:
                serial = await asyncio.to_thread(self.read_serial)
                if serial:
                    self._set_serial(serial)
                if serial and self.preload > 0 and serial != self._preloaded:
                    await asyncio.to_thread(self.preload_fields)
            except Exception:
                log.exception("could not read the content serial; will retry")

    def preload_fields(self) -> int:
        """The check-in field of up to ``preload`` stations (seen last first), in three
        queries; how many were stored.  At 100,000 stations and two workers, reading each
        one at its first check-in was a large part of the start-up cost (bench/findings.md).
        """
        self._ready()
        forgets = self._forgets
        fields: dict[int, tuple[int, dict[str, Any] | None]] = {}
        with self.db.reading() as session:
            serial = int(service.server_row(session).serial)
            kinds = service.station_kinds(session, self.preload)
            garrison = [sid for sid, garrison_kind in kinds if garrison_kind]
            groups = service.groups_of(session, garrison)
            shared: dict[str, dict[str, Any]] = {}  # one field object per manifest
            for sid, garrison_kind in kinds:
                if not garrison_kind:
                    fields[sid] = (serial, None)
                    continue
                built = self._build(session, serial, groups.get(sid, ()))
                value = shared.setdefault(
                    built.sha256, {"serial": serial, "manifest_sha256": built.sha256}
                )
                fields[sid] = (serial, value)
        self._set_serial(max(serial, self.serial))
        with self._lock:
            if forgets != self._forgets:
                return 0  # a station re-enrolled or deleted during the read: next look
            for sid, entry in fields.items():
                old = self._fields.get(sid)
                if old is None or old[0] < serial:
                    self._fields[sid] = entry
            self._preloaded = serial
        return len(fields)

    # -- the check-in field ------------------------------------------------------------------

    def cached_field(self, station_id: int) -> tuple[bool, dict[str, Any] | None]:
        """(known, field) without any database read: known False means ask ``field``."""
        entry = self._fields.get(station_id)
        serial = self.serial
        if entry is None or serial == 0 or entry[0] != serial:
            return False, None
        return True, entry[1]

    def field(self, station_id: int) -> dict[str, Any] | None:
        """The Getjobs ``content`` field of a station (None: an Armadito agent); may read."""
        known, cached = self.cached_field(station_id)
        if known:
            return cached
        self._ready()
        with self.db.reading() as session:
            serial = int(service.server_row(session).serial)
            view = service.station_view(session, station_id)
            if view is None or not view.garrison:
                value: dict[str, Any] | None = None
            else:
                built = self._build(session, serial, view.groups)
                value = {"serial": serial, "manifest_sha256": built.sha256}
        self._set_serial(max(serial, self.serial))
        with self._lock:
            self._fields[station_id] = (serial, value)
        return value

    # -- manifests ----------------------------------------------------------------------------

    def _snapshot(self, session: Any, serial: int) -> tuple[dt.datetime, str, dict[str, Any]]:
        found = self._snapshots.get(serial)
        if found is None:
            row = session.get(ContentSerial, serial)
            if row is None:
                raise NotFoundError(f"content serial {serial} is no longer kept")
            found = (row.issued, row.key_id, dict(row.snapshot))
            with self._lock:
                if len(self._snapshots) > 4 * service.KEEP_SERIALS:
                    self._snapshots.clear()
                self._snapshots[serial] = found
        return found

    def _build(self, session: Any, serial: int, groups: Iterable[tuple[int, str]]) -> Built:
        issued, key_id, snapshot = self._snapshot(session, serial)
        scope = service.scope_of(snapshot, groups)
        built = self._built.get((serial, scope))
        if built is not None:
            return built
        row = ContentSerial(serial=serial, issued=issued, key_id=key_id, snapshot=snapshot)
        manifest = service.manifest(self._server_id, row, scope)
        digest = hashlib.sha256(canonical(manifest)).hexdigest()
        key = self.ring.get(key_id)
        if key is None:
            raise ConflictError(
                f"this node lacks the private content key {key_id}: nodes sharing a database "
                "must share their content keys (GARRISON_CONTENT_KEY_DIR)"
            )
        envelope = {
            "manifest": manifest,
            "signature": sign(key, manifest),
            "key_id": key_id,
            "rotations": service.rotations(session),
        }
        built = Built(manifest, digest, orjson.dumps(envelope))
        with self._lock:
            if serial == self.serial or self.serial == 0:
                self._built[(serial, scope)] = built
        return built

    def _garrison_station(self, session: Any, credential: AgentCredential) -> Any:
        if credential.station_id is None:
            raise ForbiddenError("content needs a station's own credential (its agent token)")
        station = named_station(session, credential.station_id)
        if station.agent_kind != "garrison":
            raise NotFoundError("signed content is for Garrison agents only")
        view = service.station_view(session, station.id)
        if view is None:
            raise NotFoundError("no such station")
        return station.id, view

    def envelope(self, credential: AgentCredential) -> tuple[int, Built]:
        """The calling station's signed manifest envelope."""
        self._ready()
        with self.db.reading() as session:
            station_id, view = self._garrison_station(session, credential)
            serial = int(service.server_row(session).serial)
            return station_id, self._build(session, serial, view.groups)

    # -- files ----------------------------------------------------------------------------------

    def _allowed(self, session: Any, view: service.StationView) -> dict[str, str]:
        """sha256 -> rule set name of every file the station's manifests of the current and
        previous serials name."""
        serial = int(service.server_row(session).serial)
        allowed: dict[str, str] = {}
        for number in range(serial, max(0, serial - service.PREVIOUS_SERIALS - 1), -1):
            try:
                _issued, _key_id, snapshot = self._snapshot(session, number)
            except NotFoundError:
                break
            scope = service.scope_of(snapshot, view.groups)
            entry = snapshot["scopes"].get(scope) or snapshot["scopes"][DEFAULT_SCOPE]
            for item in entry["files"]:
                allowed.setdefault(item["sha256"], item["ruleset"])
        return allowed

    def _content(self, session: Any, ruleset: str, sha256: str) -> tuple[str, bytes] | None:
        """(kind, bytes) of a version of ``ruleset`` whose content has this hash."""
        row = session.execute(
            select(RuleSet.kind, RuleVersion.content)
            .join(RuleVersion, RuleVersion.ruleset_id == RuleSet.id)
            .where(RuleSet.name == ruleset, RuleVersion.sha256 == sha256)
            .limit(1)
        ).first()
        if row is None:
            return None
        return str(row[0]), self._cached_bytes(sha256, str(row[1]))

    def _cached_bytes(self, sha256: str, text: str) -> bytes:
        found = self._files.get(sha256)
        if found is not None:
            return found
        data = text.encode("utf-8")
        with self._lock:
            if len(data) <= MAX_FILE_CACHE_BYTES // 4:
                self._files[sha256] = data
                self._files_bytes += len(data)
                while self._files_bytes > MAX_FILE_CACHE_BYTES and self._files:
                    _, dropped = self._files.popitem(last=False)
                    self._files_bytes -= len(dropped)
        return data

    def file(
        self, credential: AgentCredential, sha256: str, base: str | None = None
    ) -> tuple[int, FileAnswer]:
        """A file the station's manifests name (else NotFoundError, as for a file that does
        not exist: a station cannot probe another's content); a line delta from ``base``
        (a version of the same rule set) when one is possible and smaller."""
        self._ready()
        with self.db.reading() as session:
            station_id, view = self._garrison_station(session, credential)
            ruleset = self._allowed(session, view).get(sha256)
            found = self._content(session, ruleset, sha256) if ruleset else None
            if ruleset is None or found is None:
                raise NotFoundError("no such file in this station's content")
            kind, data = found
            if base and base != sha256 and kind in formats.LINE_DELTA_KINDS:
                delta = self._delta(session, ruleset, base, sha256, data)
                if delta is not None:
                    return station_id, FileAnswer(delta, True)
            return station_id, FileAnswer(data, False)

    def _delta(
        self, session: Any, ruleset: str, base: str, target: str, data: bytes
    ) -> bytes | None:
        key = (base, target)
        if key in self._deltas:
            return self._deltas[key]
        old = self._content(session, ruleset, base)
        made = None
        if old is not None:
            made = line_delta(old[1], data, base, target)
        with self._lock:
            self._deltas[key] = made
            while len(self._deltas) > MAX_DELTAS:
                self._deltas.popitem(last=False)
        return made

    # -- enrollment and keys ------------------------------------------------------------------

    def enrollment_fields(self) -> dict[str, Any]:
        """What a Garrison agent's enrollment answer gains: the keys valid now and the
        server's id."""
        self._ready()
        with self.db.reading() as session:
            keys = [
                {"key_id": k.key_id, "public_key": k.public_key}
                for k in service.valid_keys(session)
            ]
        return {"content_keys": keys, "server_id": self._server_id}

    def rotate(self, actor: Actor, overlap_hours: int) -> dict[str, Any]:
        """A new key; the old one signs the rotation statement and stays valid for the
        overlap.  Returns the signed statement."""
        self._ready()
        hours = service.overlap_hours(overlap_hours)
        with self.db.reading() as session:
            current = service.current_key(session)
        old_key = self.ring.get(current.key_id)
        if old_key is None or self.ring.current_id != current.key_id:
            raise ConflictError(
                f"this node's content key is not the current one ({current.key_id}): nodes "
                "sharing a database must share their content keys (GARRISON_CONTENT_KEY_DIR)"
            )
        old_id, new_id = self.ring.rotate()
        try:
            new_public = self.ring.public_b64(new_id)
            if new_public is None:
                raise ConflictError("the new content key could not be read back")
            now = utcnow()
            until = now + dt.timedelta(hours=hours)
            statement = service.rotation_statement(old_id, new_id, new_public, now, until)
            signed = {"statement": statement, "signature": sign(old_key, statement)}
            with self.db.transaction() as session:
                service.record_rotation(session, actor, old_id, new_id, new_public, signed, until)
        except BaseException:
            self.ring.undo_rotation(old_id)
            raise
        return signed

    def forget_expired_keys(self) -> None:
        """Delete the private files of rotated keys whose overlap is over."""
        with self.db.reading() as session:
            expired = service.expired_key_ids(session)
        for key_id in expired:
            self.ring.forget(key_id)


def line_delta(old: bytes, new: bytes, base: str, target: str) -> bytes | None:
    """The ``line-delta-1`` JSON that turns ``old`` into ``new`` (CONTENT-WIRE.md), or None
    when none does (lines reordered, no final newline) or it is not smaller than ``new``."""
    if not new.endswith(b"\n") or not old.endswith(b"\n"):
        return None
    try:
        old_lines = old.decode("utf-8").split("\n")[:-1]
        new_lines = new.decode("utf-8").split("\n")[:-1]
    except UnicodeDecodeError:
        return None
    new_set = set(new_lines)
    remove = list(dict.fromkeys(line for line in old_lines if line not in new_set))
    removed = set(remove)
    kept = [line for line in old_lines if line not in removed]
    if new_lines[: len(kept)] != kept:
        return None
    add = new_lines[len(kept) :]
    rebuilt = "".join(line + "\n" for line in kept + add).encode("utf-8")
    if rebuilt != new:
        return None
    body = orjson.dumps(
        {"format": "line-delta-1", "base": base, "target": target, "remove": remove, "add": add}
    )
    return body if len(body) < len(new) else None
