"""Who is calling the agent API.

Garrison agents send ``Authorization: Bearer <agent_token>``.  Armadito agents cannot: they
answer a ``401`` carrying ``WWW-Authenticate: Basic`` with the credentials of their
configuration file.  Those are either the fleet-wide Basic credentials configured on the
server, or per-station ones (user = station uuid or agent id, password = its agent token),
which bind the request to one station the way a bearer token does.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from garrison.common.tokens import token_hash
from garrison.server.errors import NotAuthenticatedError
from garrison.server.settings import Settings
from garrison.server.stations import service as stations
from garrison.server.store.engine import Database
from garrison.server.store.prepared import PreparedSelect


@dataclass(frozen=True)
class AgentCredential:
    """``station_id`` is set when the credential itself names the station (token, per-station
    Basic); shared Basic or legacy unauthenticated requests name it in the request."""

    method: str  # "token" | "station-basic" | "shared-basic" | "none"
    station_id: int | None = None
    uuid: str | None = None


class TokenCache:
    """Token hash -> station, for a few seconds: the hot path must not hit the database."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, int, str]] = {}

    def get(self, digest: str) -> tuple[int, str] | None:
        with self._lock:
            entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1], entry[2]

    def put(self, digest: str, station_id: int, uuid: str) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) > 200_000:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            self._entries[digest] = (time.monotonic() + self.ttl, station_id, uuid)

    def forget_station(self, station_id: int) -> None:
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v[1] != station_id}

    def forget(self, station_ids: Iterable[int]) -> None:
        """Drop these stations' cached tokens (the STATION_CREDENTIALS_REVOKED signal)."""
        for station_id in station_ids:
            self.forget_station(station_id)


class AgentAuthenticator:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.cache = TokenCache(settings.token_cache_seconds)
        self._by_token_hash = PreparedSelect(db.engine, stations.BY_TOKEN_HASH)

    @property
    def challenge(self) -> str:
        return f'Basic realm="{self.settings.agent_basic_realm}"'

    def _station_for_token(self, token: str) -> tuple[int, str] | None:
        digest = token_hash(token)
        hit = self.cache.get(digest)
        if hit is not None:
            return hit
        row = self._by_token_hash.first(digest=digest)
        if row is None:
            return None
        found = (int(row[0]), str(row[1]))
        self.cache.put(digest, *found)
        return found

    def authenticate(self, authorization: str | None) -> AgentCredential:
        """Runs in a worker thread: it may read the database."""
        if authorization:
            scheme, _, value = authorization.strip().partition(" ")
            scheme = scheme.lower()
            if scheme == "bearer":
                found = self._station_for_token(value.strip())
                if found is None:
                    raise NotAuthenticatedError("invalid agent token; enroll again")
                return AgentCredential("token", found[0], found[1])
            if scheme == "basic":
                return self._basic(value.strip())
            raise NotAuthenticatedError(f"unsupported authorization scheme {scheme!r}")
        if self.settings.allow_unauthenticated_agents:
            return AgentCredential("none")
        raise NotAuthenticatedError("authentication required")

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
        if found is not None and user.upper() in (found[1], str(found[0])):
            return AgentCredential("station-basic", found[0], found[1])
        raise NotAuthenticatedError("wrong agent credentials")
