"""Who is calling the agent API: a station's credentials, checked and cached.

Garrison agents send ``Authorization: Bearer <agent_token>``.  Armadito agents cannot: they
answer a ``401`` carrying ``WWW-Authenticate: Basic`` with the credentials of their
configuration file.  Those are either the fleet-wide Basic credentials configured on the
server, or per-station ones (user = station uuid or agent id, password = its agent token),
which bind the request to one station the way a bearer token does.

This lives in the stations slice, not in the agent edge, because an agent token is a
station's attribute: ``stations.enroll`` issues it, the station row holds its hash, and a
station's lifecycle (re-enrollment, deletion) revokes it through
``Signal.STATION_CREDENTIALS_REVOKED``.  The application context, the admin side and the
agent use cases all need it; none of them should import the agent edge to get it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

import structlog
from sqlalchemy.orm import Session

from garrison.common.tokens import token_hash
from garrison.server.errors import (
    ForbiddenError,
    NotAuthenticatedError,
    StationDeniedError,
    UnknownStationError,
)
from garrison.server.events import emitters
from garrison.server.settings import Settings
from garrison.server.stations import service as stations
from garrison.server.stations.failures import FailureLimiter
from garrison.server.stations.models import Station
from garrison.server.store.engine import Database
from garrison.server.store.prepared import PreparedSelect

log = structlog.get_logger("garrison.server")


@dataclass(frozen=True)
class AgentCredential:
    """``station_id`` is set when the credential itself names the station (token, per-station
    Basic); shared Basic or legacy unauthenticated requests name it in the request."""

    method: str  # "token" | "station-basic" | "shared-basic" | "none"
    station_id: int | None = None
    uuid: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who sends an agent report: the checked credential and what the envelope says."""

    credential: AgentCredential
    uuid: str
    agent_id: int = 0


def reporting_station(session: Session, caller: Caller) -> Station:
    """The station a report acts for, read in the report's own transaction.

    A request that names another agent is refused.  A credential whose station is gone (it
    was deleted, or re-created by a ``'newbie'`` re-enrollment, possibly on another node
    while this node still trusted the cached token) is 401: the agent must enroll again.
    Reading the row here also means no report can write rows for a missing station.
    """
    cred = caller.credential
    if cred.station_id is not None:
        if caller.uuid != cred.uuid:
            raise ForbiddenError("this uuid belongs to another agent", field="uuid")
        if caller.agent_id not in (0, cred.station_id):
            raise ForbiddenError("this agent_id belongs to another agent", field="agent_id")
        return named_station(session, cred.station_id)
    found = stations.by_uuid(session, caller.uuid)
    if found is None:
        raise UnknownStationError("unknown agent uuid; run the Enrollment task first", field="uuid")
    if caller.agent_id not in (0, found.id):
        raise ForbiddenError("agent_id does not match this uuid", field="agent_id")
    return allowed(found)


def named_station(session: Session, station_id: int) -> Station:
    """The station a credential names, which may have gone since the token was checked (or
    been denied: another node may still trust its cached token, for a report's sake)."""
    station = session.get(Station, station_id)
    if station is None:
        raise NotAuthenticatedError("this agent's station no longer exists; enroll again")
    return allowed(station)


def allowed(station: Station) -> Station:
    """The station, unless it is denied (``stations/transitions.py``)."""
    if station.denied_at is not None:
        raise denied(station.id)
    return station


def denied(station_id: int) -> StationDeniedError:
    return StationDeniedError(
        "this station was denied by the station_authorization_in_progress procedure; "
        f"an administrator must allow it (POST /admin/v1/stations/{station_id}/allow)",
        station_id=station_id,
    )


class CachedToken(NamedTuple):
    station_id: int
    uuid: str
    expires: float


class TokenCache:
    """Token hash -> station, for ``ttl`` seconds: the hot path must not hit the database.

    Every entry lives ``ttl`` seconds, so insertion order is expiry order: ``put`` drops
    expired entries from the front of an ordered dict, O(1) amortised, and the cache never
    holds more than the tokens checked within one ``ttl``.  ``_by_station`` indexes each
    station's digests (usually one), so revoking a station costs O(its tokens), not a scan.

    ``get`` takes no lock: a dict lookup is atomic and entries are immutable tuples.  Writers
    (``put``, ``forget``) hold the lock, so entries and index change together.

    A token read from the database just before its station was revoked must not be cached
    just after: ``put`` is given the :attr:`revocations` count seen before the read, and
    caches nothing when a revocation happened since (the next request reads again).
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, CachedToken] = OrderedDict()
        self._by_station: dict[int, set[str]] = {}
        self.revocations = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> CachedToken | None:
        entry = self._entries.get(digest)
        if entry is None or entry.expires < self._clock():
            return None
        return entry

    def put(self, digest: str, station_id: int, uuid: str, since: int | None = None) -> None:
        """Cache a token read from the database; ``since``: :attr:`revocations` before it."""
        if self.ttl <= 0:
            return
        now = self._clock()
        with self._lock:
            if since is not None and since != self.revocations:
                return
            self._drop_expired(now)
            old = self._entries.pop(digest, None)
            if old is not None:
                self._unindex(digest, old.station_id)
            self._entries[digest] = CachedToken(station_id, uuid, now + self.ttl)
            self._by_station.setdefault(station_id, set()).add(digest)

    def load(self, rows: Iterable[tuple[str, int, str]], since: int) -> bool:
        """Replace the whole cache with a snapshot of the stations table, (token hash,
        station id, uuid) of allowed stations read after :attr:`revocations` was ``since``.
        False (nothing changed) when a revocation happened since: the snapshot may hold the
        revoked token.  Tokens put while the snapshot was read are dropped (read again once).
        """
        if self.ttl <= 0:
            return False
        expires = self._clock() + self.ttl
        entries: OrderedDict[str, CachedToken] = OrderedDict()
        by_station: dict[int, set[str]] = {}
        for digest, station_id, uuid in rows:
            entries[digest] = CachedToken(station_id, uuid, expires)
            by_station.setdefault(station_id, set()).add(digest)
        with self._lock:
            if since != self.revocations:
                return False
            # One assignment each: a lock-free ``get`` sees the old dict or the new one.
            self._entries, self._by_station = entries, by_station
        return True

    def forget_station(self, station_id: int) -> None:
        self.forget((station_id,))

    def forget(self, station_ids: Iterable[int]) -> None:
        """Drop these stations' cached tokens (the STATION_CREDENTIALS_REVOKED signal)."""
        with self._lock:
            self.revocations += 1
            for station_id in station_ids:
                for digest in self._by_station.pop(station_id, ()):
                    self._entries.pop(digest, None)

    def clear(self) -> None:
        """Drop every cached token (a revocation committed in another process)."""
        with self._lock:
            self.revocations += 1
            self._entries.clear()
            self._by_station.clear()

    def _drop_expired(self, now: float) -> None:
        entries = self._entries
        while entries:
            digest = next(iter(entries))
            entry = entries[digest]
            if entry.expires >= now:
                return
            del entries[digest]
            self._unindex(digest, entry.station_id)

    def _unindex(self, digest: str, station_id: int) -> None:
        digests = self._by_station.get(station_id)
        if digests is not None:
            digests.discard(digest)
            if not digests:
                del self._by_station[station_id]


class AgentAuthenticator:
    """Checks an agent request's credentials; refuses a denied station's
    (``StationDeniedError``) and reports failures as ``station_authorization_failed``, at most
    once per client address per ``auth_failure_report_seconds`` (see ``failures.py``).

    The token cache holds only stations allowed to work: a denied station's token is read
    from the database at each request (its row says it is denied), and a denial drops the
    station's cached tokens at commit, so the cached hot path never checks for denial.
    """

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.cache = TokenCache(settings.token_cache_seconds)
        self.failures = FailureLimiter(settings.auth_failure_report_seconds)
        self._by_token_hash = PreparedSelect(db.engine, stations.BY_TOKEN_HASH)
        self._marker: str | None = None
        self._looked = False
        self._loaded_at: float | None = None  # monotonic time of the last bulk load

    def watch_revocations(self) -> bool:
        """Every ``token_watch_seconds``: when a revocation committed anywhere (another
        worker, another node) since the last look, the whole cache goes (the marker does not
        say whose) and is loaded again in bulk.  True then.

        The first look compares with nothing and replaces the cache too: tokens cached
        before it, while a revocation may have committed elsewhere, are not trusted past it.
        The bulk load also runs every half ``token_cache_seconds``, before the loaded
        entries expire: a fleet checking in every minute then never reads its tokens one
        request at a time (at 100,000 agents and two workers, that was most of the server's
        time: bench/findings.md)."""
        since = self.cache.revocations
        with self.db.reading() as session:
            marker = stations.credentials_marker(session)
            changed = not self._looked or marker != self._marker
            rows = self._preload(session, changed)
        self._marker, self._looked = marker, True
        if rows is not None:
            if self.cache.load(rows, since):
                self._loaded_at = time.monotonic()
                return changed
            self._loaded_at = None  # a local revocation raced the read: load again soon
        if changed:
            self.cache.clear()
        return changed

    def _preload(self, session: Session, changed: bool) -> list[tuple[str, int, str]] | None:
        """The snapshot to load, when one is due (read after the marker: a revocation that
        commits between the two moves the marker again, so the next look reloads)."""
        limit = self.settings.token_cache_preload
        if limit <= 0 or self.cache.ttl <= 0:
            return None
        loaded = self._loaded_at
        if not changed and loaded is not None and time.monotonic() - loaded < self.cache.ttl / 2:
            return None
        return stations.allowed_tokens(session, limit)

    @property
    def challenge(self) -> str:
        return f'Basic realm="{self.settings.agent_basic_realm}"'

    def _station_for_token(self, token: str) -> _TokenOwner | None:
        digest = token_hash(token)
        cache = self.cache
        hit = cache.get(digest)
        if hit is not None:
            return _TokenOwner(hit.station_id, hit.uuid, False)
        since = cache.revocations
        row = self._by_token_hash.first(digest=digest)
        if row is None:
            return None
        found = _TokenOwner(int(row[0]), str(row[1]), bool(row[2]))
        if not found.denied:
            cache.put(digest, found.station_id, found.uuid, since=since)
        return found

    def authenticate(self, authorization: str | None, address: str = "") -> AgentCredential:
        """Runs in a worker thread: it may read the database, and write the rare
        ``station_authorization_failed`` event in a transaction of its own."""
        if not authorization:
            # Not a failure: an Armadito agent asks first without credentials, and answers
            # the 401's Basic challenge.
            if self.settings.allow_unauthenticated_agents:
                return AgentCredential("none")
            raise NotAuthenticatedError("authentication required")
        try:
            return self._check(authorization)
        except StationDeniedError as exc:
            self._failed(exc.message, address, exc.station_id)
            raise
        except NotAuthenticatedError as exc:
            self._failed(exc.message, address, None)
            raise

    def _check(self, authorization: str) -> AgentCredential:
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            found = self._station_for_token(value.strip())
            if found is None:
                raise NotAuthenticatedError("invalid agent token; enroll again")
            return found.credential("token")
        if scheme == "basic":
            return self._basic(value.strip())
        raise NotAuthenticatedError(f"unsupported authorization scheme {scheme!r}")

    def _basic(self, value: str) -> AgentCredential:
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise NotAuthenticatedError("malformed Basic credentials") from None
        if not sep:
            raise NotAuthenticatedError("malformed Basic credentials")
        shared_user = self.settings.agent_basic_user
        shared_password = self.settings.agent_basic_password
        if shared_user is not None and shared_password is not None:
            user_ok = hmac.compare_digest(user.encode(), shared_user.encode())
            pass_ok = hmac.compare_digest(
                password.encode(), shared_password.get_secret_value().encode()
            )
            if user_ok and pass_ok:
                return AgentCredential("shared-basic")
        found = self._station_for_token(password)
        if found is not None and user.upper() in (found.uuid, str(found.station_id)):
            return found.credential("station-basic")
        raise NotAuthenticatedError("wrong agent credentials")

    def _failed(self, reason: str, address: str, station_id: int | None) -> None:
        """Report a refused request, unless its address was reported within the interval.
        Never the credentials themselves: only why they were refused."""
        suppressed = self.failures.failed(address)
        if suppressed is None:
            return
        try:
            with self.db.transaction() as session:
                station = session.get(Station, station_id) if station_id is not None else None
                emitters.authorization_failed(
                    session, reason, address, station, suppressed=suppressed
                )
        except Exception:
            # The refusal stands even when it cannot be recorded (a database outage).
            log.exception("could not record station_authorization_failed", address=address)


class _TokenOwner(NamedTuple):
    station_id: int
    uuid: str
    denied: bool

    def credential(self, method: str) -> AgentCredential:
        if self.denied:
            raise denied(self.station_id)
        return AgentCredential(method, self.station_id, self.uuid)
