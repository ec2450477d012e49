"""Sync tokens (docs/sync.md): an opaque, signed token holds the snapshot of the read that
issued it; resuming from it returns every page whose last write that snapshot could not
see (each write records its transaction, migration 0011). A change committed after the
read, or by a transaction still running during it (a long generate), is never missed,
whatever its `updated_at`; a change already seen may come again, which a consumer applies
twice harmlessly (the content hash says whether anything changed)."""

from __future__ import annotations

import re

from seo_engine.db.database import Connection
from seo_engine.serve import cursors
from seo_engine.serve.cursors import CursorError

# The snapshot of a read about to start, and how far its server's WAL reaches (on a standby,
# what it has replayed, which covers every commit the snapshot sees; on the primary, what
# has been inserted): a read that continues it elsewhere goes to a server at least as far.
#
# On a standby, pg_current_snapshot() lists no running transactions (the standby keeps
# them apart, as "known assigned" ids, and the function reads only the primary's list):
# xmin:xmax: with nothing between would call a transaction still running on the primary
# seen, and a token would skip its changes. There the token claims only what is older than
# the oldest running transaction (xmin:xmin:): changes in between come again, none is lost.
SNAPSHOT = """
SELECT CASE WHEN pg_is_in_recovery()
            THEN pg_snapshot_xmin(s)::text || ':' || pg_snapshot_xmin(s)::text || ':'
            ELSE s::text END AS snapshot,
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
             ELSE pg_current_wal_insert_lsn() END - '0/0'::pg_lsn)::int8 AS wal_position
FROM pg_current_snapshot() AS s
"""
# What a page document holds. A token issued under another version is refused with 410:
# the consumer syncs from scratch (its stored documents have another shape).
SCHEMA_VERSION = 1
HEADER = "Sync-Token"
# The text form of pg_snapshot: xmin:xmax:xip,xip,…
SNAPSHOT_TEXT = re.compile(r"[0-9]+:[0-9]+:[0-9,]*")
FIRST = ("0", 0)  # the keyset position before every (change_xid, id)


class SyncExpired(Exception):
    """The token was issued for another shape of the documents: sync from scratch."""


def fingerprint(site_id: int, *filters: object) -> str:
    """What a token is for: its site and filters (a token of another list is refused)."""
    return "sync|" + "|".join(str(part) for part in (site_id, *filters))


def issue(key: bytes, query: str, snapshot: str) -> str:
    return cursors.encode(key, query, [snapshot, SCHEMA_VERSION])


def snapshot_of(key: bytes, query: str, token: str) -> str:
    """The snapshot a token holds; CursorError unless it is genuine and for this list,
    SyncExpired when it was issued for other documents."""
    try:
        snapshot, version = cursors.decode(key, query, token, what="sync token")
    except ValueError:
        raise CursorError("sync token is not valid") from None
    if version != SCHEMA_VERSION:
        raise SyncExpired(
            "this sync token was issued for an older shape of the page documents; "
            "sync from scratch (without a token)"
        )
    if not isinstance(snapshot, str) or not SNAPSHOT_TEXT.fullmatch(snapshot):
        raise CursorError("sync token is not valid")
    return snapshot


async def read_point(connection: Connection) -> tuple[str, int]:
    """The snapshot of a read about to start (everything it can see, the token covers) and
    its server's WAL position (a floor for the servers that continue the read)."""
    row = await connection.fetchrow(SNAPSHOT)
    assert row is not None
    return row["snapshot"], row["wal_position"]


async def current_snapshot(connection: Connection) -> str:
    """The snapshot of a read about to start: everything it can see, the token covers."""
    return (await read_point(connection))[0]
