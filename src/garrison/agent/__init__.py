"""``garrison-agent``: the endpoint agent (Armadito-compatible tasks, scan engine, spool).

It never imports server code; it may import :mod:`garrison.common`.
"""

from __future__ import annotations

ENGINE_NAME = "Garrison"
