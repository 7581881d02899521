"""The policy's exclusions (``exclude_processes``, ``exclude_hashes``): events the
administrator does not want, kept from the spool and counted as ``excluded``.

Checked by the emitter on every event, after the sensor built it: one set lookup per hash
field and, for process events, one precompiled pattern match on the name and path.  Path
exclusions of created files are the file sensor's own (``file_exclude``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any

PROCESS_EVENTS = frozenset({"process_started", "process_stopped"})
HASH_FIELDS = ("md5", "sha256")


class Exclusions:
    def __init__(self, processes: Iterable[str] = (), hashes: Iterable[str] = ()) -> None:
        globs = [g for g in processes if g]
        self._process: re.Pattern[str] | None = (
            re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs)) if globs else None
        )
        self._hashes = frozenset(h.lower() for h in hashes if h)

    def __bool__(self) -> bool:
        return self._process is not None or bool(self._hashes)

    def excludes(self, event_type: str, data: dict[str, Any]) -> bool:
        if self._hashes:
            for key in HASH_FIELDS:
                value = data.get(key)
                if isinstance(value, str) and value in self._hashes:
                    return True
        if self._process is not None and event_type in PROCESS_EVENTS:
            for key in ("file_name", "full_name"):
                value = data.get(key)
                if isinstance(value, str) and self._process.match(value):
                    return True
        return False
