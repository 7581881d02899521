"""The per-station uninstall token: a statement the server signs with its content key
(Ed25519), which the agent checks with the keys it pinned at enrollment, offline.

``gu1.<statement>.<signature>``, both parts base64url without padding; the statement is
canonical JSON ``{"type": "garrison-uninstall", "server_id", "station_uuid", "agent_id",
"key_id", "issued", "expires"}`` (times RFC 3339 UTC).  It names one station and expires;
nothing secret is kept on the station to guess from.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

PREFIX = "gu1"
TYPE = "garrison-uninstall"
MAX_TOKEN = 4096


class TokenError(ValueError):
    pass


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("the token is not base64url") from None


def encode(statement: dict[str, Any], signature: bytes) -> str:
    return f"{PREFIX}.{_b64(canonical(statement))}.{_b64(signature)}"


def decode(token: str) -> tuple[dict[str, Any], bytes, bytes]:
    """(statement, the signed bytes, signature); TokenError when it is not a token."""
    text = token.strip()
    if len(text) > MAX_TOKEN:
        raise TokenError("the token is too long")
    parts = text.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError("not an uninstall token (gu1.…)")
    signed = _unb64(parts[1])
    try:
        statement = json.loads(signed)
    except ValueError:
        raise TokenError("the token's statement is not JSON") from None
    if not isinstance(statement, dict) or statement.get("type") != TYPE:
        raise TokenError("the token is not an uninstall statement")
    return statement, signed, _unb64(parts[2])
