"""Page documents: everything a builder or a template needs to show one page.

PostgreSQL builds them (`page_document`, migration 0003). The same document feeds the JSON
API, the NDJSON export and the HTML page, so they can never disagree.
"""

from __future__ import annotations

from typing import Any

import asyncpg


def etag(content_hash: bytes) -> str:
    """A strong ETag derived from the stored content hash (no rendering needed)."""
    return f'"{content_hash.hex()}"'


def ndjson(rows: list[asyncpg.Record]) -> bytes:
    """Export rows (documents built by PostgreSQL) as NDJSON lines."""
    return b"".join(row["document"] + b"\n" for row in rows)


def next_position(rows: list[asyncpg.Record], by_update: bool) -> tuple[Any, ...]:
    """The keyset position after the last row: (id,) or (updated_at, id)."""
    last = rows[-1]
    return (last["updated_at"], last["id"]) if by_update else (last["id"],)
