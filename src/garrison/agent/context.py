"""One agent's working set: its state dir, configuration, credentials, spool and engine.

Tasks and jobs receive an :class:`Agent`; nothing here is global, so tests run several agents
in one process and the daemon shares one with its threads.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from garrison.agent import config as configmod
from garrison.agent import trust
from garrison.agent.config import AgentConfig
from garrison.agent.content.store import ContentStore
from garrison.agent.errors import NotEnrolledError, UnreachableError
from garrison.agent.quarantine import Quarantine
from garrison.agent.scan.engine import Engine
from garrison.agent.scan.signatures import SignatureDB, SignatureError, load_database
from garrison.agent.spool import FlushResult, Spool
from garrison.agent.state import Credentials, StateDir
from garrison.agent.transport import Identity, Transport

log = logging.getLogger("garrison.agent")


def mime_base64(text: str) -> str:
    """As Perl's MIME::Base64: lines of 76 characters, each ending in a newline."""
    return base64.encodebytes(text.encode("utf-8")).decode("ascii")


class Agent:
    def __init__(
        self,
        state: StateDir,
        server_url: str | None = None,
        say: Callable[[str], None] | None = None,
        read_only: bool = False,
    ) -> None:
        """``read_only``: for commands that only look (``quarantine list``, ``status``): the
        state dir and its default config are not created when missing."""
        self.state = state if read_only else state.ensure()
        self.say = say or (lambda text: log.info("%s", text))
        self.config: AgentConfig = configmod.load(state.config_file)
        if not read_only and not state.config_file.exists():
            configmod.save(state.config_file, self.config)
        self._server_url = server_url
        self._spool: Spool | None = None
        self._db: SignatureDB | None = None
        self._swap_lock = threading.Lock()
        self._generation = 0
        # The signed manifest (its sha256) the engine in memory was built from; "" for none.
        self.loaded_content = ""
        self.lock = threading.RLock()
        self.stop_requested = threading.Event()
        self.uninstall_requested = False
        # UpgradeAgent: set by the daemon (which can restart into a new version); the job
        # sets restart_requested once the new version is in place.
        self.restart_possible = False
        self.restart_requested = False
        # What the daemon's prevention adds to State's avdetails (None: not running here).
        self.prevention_status: Callable[[], dict[str, str]] | None = None
        if server_url:
            creds = state.credentials()
            # A pinned agent never records an http:// URL (trust.verify_for refuses it).
            downgrade = bool(self.config.server.ca_sha256) and server_url.startswith("http://")
            if creds is not None and creds.server_url != server_url and not downgrade:
                creds.server_url = server_url
                state.save_credentials(creds)

    # -- identity and server -------------------------------------------------------------------

    @property
    def uuid(self) -> str:
        return self.state.station_uuid()

    @property
    def server_url(self) -> str:
        creds = self.state.credentials()
        return self._server_url or (creds.server_url if creds else "") or self.config.server.url

    def credentials(self) -> Credentials:
        creds = self.state.credentials()
        if creds is None or creds.agent_id <= 0:
            raise NotEnrolledError(
                f"this agent is not enrolled (state dir {self.state.path}): "
                "run garrison-agent -s URL -t Enrollment -k KEY first"
            )
        return creds

    def transport(self, timeout: float | None = None) -> Transport:
        creds = self.credentials()
        url = self.server_url
        if not url:
            raise UnreachableError("no server URL: give -s URL")
        verify = trust.verify_for(self.state, self.config.server.ca_sha256, url)
        return Transport(url, Identity(self.uuid, creds.agent_id, creds.token), timeout, verify)

    # -- spool -------------------------------------------------------------------------------

    @property
    def spool(self) -> Spool:
        if self._spool is None:
            self._spool = Spool(
                self.state.spool_file, self.config.spool.max_age_days, self.config.spool.max_bytes
            )
        return self._spool

    def send(self, path: str, task: str, obj: Any) -> str:
        return self.spool.enqueue(path, task, obj)

    def event(self, event_type: str, data: dict[str, Any], event_id: str | None = None) -> str:
        return self.spool.enqueue_event(event_type, data, event_id=event_id)

    def flush(self, force: bool = True, transport: Transport | None = None) -> FlushResult:
        """Send what is queued; one flusher at a time across processes."""
        own = transport is None
        client = transport or self.transport()
        try:
            with self.state.lock("flush"):
                return self.spool.flush(client, force=force)
        finally:
            if own:
                client.close()

    def flush_or_raise(self) -> FlushResult:
        result = self.flush()
        if result.error is not None:
            result.error.message += f"; {result.remaining} message(s) queued in the spool"
            raise result.error
        return result

    # -- engine ------------------------------------------------------------------------------

    def reload_signatures(self) -> SignatureDB:
        """Load the engine's database: the packaged base, the signed content in force
        (``content/current``) and, when allowed, files installed from a source.  Signed
        content that no longer loads (yara-python removed…) is set aside with a log line,
        so the agent still scans with the rest.  A swap made while this loaded wins."""
        with self._swap_lock:
            generation = self._generation
        store = ContentStore(self.state)
        found = store.installed()
        manifest = found.manifest if found else None
        dirs = store.engine_dirs(manifest, found.directory if found else None)
        try:
            db = load_database(dirs, self.config.scan.yara)
        except SignatureError as exc:
            if found is None:
                raise
            log.error("the installed signed content does not load (%s); scanning without it", exc)
            db = load_database([d for d in dirs if d != found.directory], self.config.scan.yara)
        with self._swap_lock:
            if self._generation == generation:
                self._install_db(db, manifest.sha256 if manifest else "")
            return self._db or db

    def swap_signatures(self, db: SignatureDB, content_sha256: str = "") -> SignatureDB | None:
        """Put ``db`` (built from the signed manifest ``content_sha256``) in force in one
        assignment; a scan already running keeps the engine it started with.  Returns the
        database it replaces."""
        with self._swap_lock:
            return self._install_db(db, content_sha256)

    def _install_db(self, db: SignatureDB, content_sha256: str) -> SignatureDB | None:
        previous, self._db = self._db, db
        self.loaded_content = content_sha256
        self._generation += 1
        return previous

    @property
    def signatures(self) -> SignatureDB:
        return self._db or self.reload_signatures()

    def engine(self) -> Engine:
        return Engine(self.signatures, self.config.scan)

    @property
    def quarantine(self) -> Quarantine:
        return Quarantine(self.state.quarantine_dir)

    def save_config(self) -> None:
        configmod.save(self.state.config_file, self.config)
        if self._spool is not None:
            self._spool.max_age = self.config.spool.max_age_days * 86400
            self._spool.max_bytes = self.config.spool.max_bytes

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


def state_dir_of(path: Path | None) -> StateDir:
    return StateDir.resolve(path)
