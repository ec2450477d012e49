"""Opaque, tamper-evident pagination cursors: signed JSON, base64url-encoded."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Any

import orjson

from seo_engine.db.database import Connection

VERSION = 1
SIGNATURE_BYTES = 16
MAX_CURSOR_CHARS = 2048  # a sync token holds a snapshot: its running transactions too

ENSURE_KEY = """
INSERT INTO app_secrets (name, value) VALUES ('cursor_key', $1)
ON CONFLICT (name) DO NOTHING
"""
SELECT_KEY = "SELECT value FROM app_secrets WHERE name = 'cursor_key'"


class CursorError(Exception):
    """A cursor was forged, corrupted, or belongs to another query."""


async def load_key(connection: Connection) -> bytes:
    """The cursor signing key shared by all API processes (created on first use)."""
    await connection.execute(ENSURE_KEY, secrets.token_bytes(32))
    key: bytes = await connection.fetchval(SELECT_KEY)
    return key


def _sign(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def encode(key: bytes, query: str, position: list[Any]) -> str:
    """A cursor that resumes `query` (a fingerprint of endpoint + filters) after `position`."""
    payload = orjson.dumps({"v": VERSION, "q": query, "p": position})
    token = _sign(key, payload) + payload
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode()


def decode(key: bytes, query: str, cursor: str, what: str = "cursor") -> list[Any]:
    """The position stored in a cursor; CursorError unless it is genuine and for `query`.
    `what` names it in the errors (a sync token is a cursor too)."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise CursorError(f"{what} is too long")
    try:
        token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise CursorError(f"{what} is not valid") from None
    signature, payload = token[:SIGNATURE_BYTES], token[SIGNATURE_BYTES:]
    if not hmac.compare_digest(signature, _sign(key, payload)):
        raise CursorError(f"{what} is not valid")
    data = orjson.loads(payload)
    if data.get("v") != VERSION or data.get("q") != query:
        raise CursorError(
            f"{what} belongs to another query (site or filters); start again without it"
        )
    position = data.get("p")
    if not isinstance(position, list):
        raise CursorError(f"{what} is not valid")
    return position
