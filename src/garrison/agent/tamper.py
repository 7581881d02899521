"""Tamper resistance of the daemon (docs/agent.md "Tamper resistance").

- ``IsolationGuard``: while the station is isolated, the nftables table is listed every
  ``CHECK_SECONDS``; a table removed or changed (``nft delete table inet
  garrison_isolation``, a rule flushed or added) is put back from the saved rule set and
  reported (``isolation_tampered``).  The reference is the kernel's own listing of the
  table right after the agent applied it, so nft's formatting never reads as a change.
- ``RunMarker``: ``run.json`` in the state dir says a daemon is running (its pid) until a
  clean stop marks it stopped; a start that finds it still running knows the previous run
  was killed or crashed, and ``STARTING_UP`` says so (``UNCLEAN_STOP``).
- ``check_private``: the state dir is 0700 and its files 0600, as the agent writes them; at
  start one found wider is narrowed back with a logged warning (the agent fixes rather than
  refuses: refusing would leave the station unprotected until someone came by), and a file
  owned by another user is refused (someone else may have put it there).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from garrison.agent import isolation
from garrison.agent.errors import AgentError, LocalError
from garrison.agent.state import StateDir

log = logging.getLogger("garrison.agent.tamper")

CHECK_SECONDS = 2.0
RUN_FILE = "run.json"


# -- the isolation table ---------------------------------------------------------------------


class IsolationGuard:
    def __init__(
        self,
        state: StateDir,
        emit: Callable[[str, dict[str, Any]], object],
        on_queued: Callable[[], None] = lambda: None,
        every: float = CHECK_SECONDS,
    ) -> None:
        self.state = state
        self.emit = emit
        self.on_queued = on_queued
        self.every = every
        self.count = 0
        self._reference: tuple[object, str] | None = None  # (isolation "since", listing)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="isolation-guard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.check()
            except Exception:
                log.exception("isolation guard crashed; checking again")

    def _listing(self) -> str | None:
        """The table as the kernel has it; None when it is gone."""
        try:
            return isolation.active_ruleset()
        except isolation.IsolationError as exc:
            if "No such file or directory" in str(exc):
                return None
            raise

    def _apply(self, data: dict[str, Any]) -> str | None:
        isolation.apply(str(data["ruleset"]))
        listing = self._listing()
        if listing is not None:
            self._reference = (data.get("since"), listing)
        return listing

    def check(self) -> str:
        """One look: ``not isolated``, ``intact``, ``removed`` or ``changed`` (the last two
        put back and reported)."""
        data = isolation.saved(self.state)
        if data is None:
            self._reference = None
            return "not isolated"
        listing = self._listing()
        if self._reference is None or self._reference[0] != data.get("since"):
            # First sight of this isolation: put the saved rule set in force again (an
            # atomic replace) and take the kernel's listing as the reference; what was
            # there before differing from it is a change made since the job applied it.
            if listing is not None and self._apply(data) == listing:
                return "intact"
        elif listing == self._reference[1]:
            return "intact"
        change = "removed" if listing is None else "changed"
        self.count += 1
        report: dict[str, Any] = {"time": time.time(), "change": change, "count": self.count}
        try:
            restored = self._apply(data) is not None
        except isolation.IsolationError as exc:
            restored = False
            report["error"] = str(exc)[:1000]
        report["restored"] = restored
        log.warning(
            "the isolation table was %s by someone else: %s",
            change,
            "put back" if restored else f"NOT put back ({report.get('error')})",
        )
        try:
            self.emit("isolation_tampered", report)
        except AgentError as exc:
            log.warning("isolation_tampered: %s", exc.message)
        self.on_queued()
        return change


# -- clean and unclean stops -----------------------------------------------------------------


class RunMarker:
    def __init__(self, state: StateDir) -> None:
        self.state = state
        self.path = state.path / RUN_FILE

    def begin(self) -> dict[str, Any]:
        """Mark this run as running; what STARTING_UP adds about the previous one."""
        previous = self.state.read_json(self.path, None)
        self.state.write_json(
            self.path, {"running": True, "pid": os.getpid(), "started": int(time.time())}
        )
        if isinstance(previous, dict) and previous.get("running"):
            pid = previous.get("pid")
            log.warning("the previous run (pid %s) did not stop cleanly: killed or crashed", pid)
            out: dict[str, Any] = {"UNCLEAN_STOP": 1}
            if isinstance(pid, int):
                out["PREVIOUS_PID"] = pid
            return out
        return {"UNCLEAN_STOP": 0}

    def end(self) -> None:
        self.state.write_json(self.path, {"running": False, "stopped": int(time.time())})


# -- file modes ------------------------------------------------------------------------------


def check_private(state: StateDir) -> list[str]:
    """Narrow what is wider than 0700 (the dir and its directories) or 0600 (its files);
    the warnings logged, one a path.  LocalError for a path owned by another user."""
    fixed: list[str] = []
    me = os.geteuid()
    paths: list[Path] = [state.path]
    try:
        paths += sorted(state.path.iterdir())
    except OSError as exc:
        raise LocalError(f"cannot check state dir {state.path}: {exc.strerror}") from None
    for path in paths:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue  # a temporary file gone meanwhile
        if stat.S_ISLNK(info.st_mode):
            continue  # content/current and the like: what they point to is checked
        if info.st_uid != me:
            raise LocalError(
                f"{path} belongs to uid {info.st_uid}, not to the agent (uid {me}): "
                "refusing to start; remove it or give it back to the agent's user"
            )
        wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        mode = stat.S_IMODE(info.st_mode)
        if mode & ~wanted:
            os.chmod(path, mode & wanted)
            text = f"{path} was mode {mode:04o}; narrowed to {mode & wanted:04o}"
            log.warning("%s", text)
            fixed.append(text)
    return fixed
