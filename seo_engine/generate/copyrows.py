"""Page rows in PostgreSQL's binary COPY format, encoded where they are rendered.

The render workers encode their own rows, so the process that loads them only forwards
bytes: `COPY … FROM STDIN (FORMAT binary)` is the fastest way into PostgreSQL, and one
encoding serves both the staging table and `pages`.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from typing import NamedTuple

# site_id, then the page columns in this order; `PageRow` below has the same fields.
COLUMNS = (
    "site_id",
    "service_id",
    "location_id",
    "path",
    "title",
    "meta_description",
    "h1",
    "document",
    "quality_score",
    "indexable",
    "quality_flags",
    "nearest_similarity",
    "nearest_location_id",
    "nearest_service_id",
    "content_hash",
)
# page_builds (migration 0007), in this order.
BUILD_COLUMNS = (
    "site_id",
    "service_id",
    "location_id",
    "inputs",
    "signature",
    "title_key",
    "description_key",
    "family_location_id",
    "family_equal",
    "place_service_id",
    "place_equal",
)

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
_KEYS = struct.Struct("!hiiiqiq")  # field count, site_id int4, service_id and location_id int8
_LENGTH = struct.Struct("!i")
# quality_score float4, indexable bool, quality_flags int4
_QUALITY = struct.Struct("!ifi?ii")
_SIMILARITY = struct.Struct("!if")  # nearest_similarity float4
_ID = struct.Struct("!iq")  # an int8 column: nearest_location_id, nearest_service_id
_TEXT_KEYS = struct.Struct("!iqiq")  # title_key and description_key int8
_EQUAL = struct.Struct("!ih")  # family_equal, place_equal int2
_NULL = _LENGTH.pack(-1)
_PAIR = struct.Struct("!hiqiq")  # two int8 columns


class Quality(NamedTuple):
    """The quality gate's columns of a page row."""

    score: float
    indexable: bool
    flags: int
    nearest_similarity: float | None
    nearest_location_id: int | None
    nearest_service_id: int | None


def encode(
    site_id: int,
    service_id: int,
    location_id: int,
    fields: tuple[bytes, ...],
    quality: Quality,
    content_hash: bytes,
) -> bytes:
    """One page row as a binary COPY tuple.

    `fields` are path, title, meta_description, h1 (UTF-8 text) and the document (bytea),
    in column order: in binary COPY both travel as their raw bytes.
    """
    parts = [_KEYS.pack(len(COLUMNS), 4, site_id, 8, service_id, 8, location_id)]
    for data in fields:
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    parts.append(_QUALITY.pack(4, quality.score, 1, quality.indexable, 4, quality.flags))
    similarity = quality.nearest_similarity
    parts.append(_NULL if similarity is None else _SIMILARITY.pack(4, similarity))
    parts.append(_id(quality.nearest_location_id))
    parts.append(_id(quality.nearest_service_id))
    parts.append(_LENGTH.pack(len(content_hash)))
    parts.append(content_hash)
    return b"".join(parts)


def _id(value: int | None) -> bytes:
    return _NULL if value is None else _ID.pack(8, value)


class Build(NamedTuple):
    """One page_builds row: what a page was built from and how it compared."""

    service_id: int
    location_id: int
    inputs: bytes
    signature: bytes
    title_key: int
    description_key: int
    family_location_id: int | None
    family_equal: int
    place_service_id: int | None
    place_equal: int


def encode_build(site_id: int, build: Build) -> bytes:
    """One page_builds row as a binary COPY tuple."""
    return b"".join(
        (
            _KEYS.pack(len(BUILD_COLUMNS), 4, site_id, 8, build.service_id, 8, build.location_id),
            _LENGTH.pack(len(build.inputs)),
            build.inputs,
            _LENGTH.pack(len(build.signature)),
            build.signature,
            _TEXT_KEYS.pack(8, build.title_key, 8, build.description_key),
            _id(build.family_location_id),
            _EQUAL.pack(2, build.family_equal),
            _id(build.place_service_id),
            _EQUAL.pack(2, build.place_equal),
        )
    )


def payload(rows: list[bytes]) -> bytes:
    """A complete COPY stream (header, rows, trailer) for one batch."""
    return b"".join((HEADER, *rows, TRAILER))


def keys(pairs: list[tuple[int, int]]) -> bytes:
    """(service_id, location_id) pairs as a complete COPY stream of two bigint columns."""
    return b"".join((HEADER, *(_PAIR.pack(2, 8, s, 8, loc) for s, loc in pairs), TRAILER))


async def source(payload: bytes) -> AsyncIterator[bytes]:
    """A payload as asyncpg's `copy_to_table(source=…)` takes it without a thread hop."""
    yield payload
