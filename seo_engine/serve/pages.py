"""Page queries: pages by path, keyset-paginated lists, counts, and export chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from seo_engine.db.database import Connection
from seo_engine.generate.visibility import IN_FEEDS, SERVED
from seo_engine.ingest.sites import Site

# Pages by (site, path), many at a time: concurrent requests share one query (lookups.py).
# The document is stored as served (documents.py), so reading it builds nothing.
PAGES_BY_PATHS = f"""
SELECT k.site_id, k.path, p.document, p.content_hash, p.updated_at, p.indexable
FROM unnest($1::int[], $2::text[]) AS k(site_id, path)
JOIN pages p ON p.site_id = k.site_id AND p.path = k.path AND {SERVED}
"""  # noqa: S608 (constant)
# Only what a conditional request needs: no document is read.
VERSIONS_BY_PATHS = f"""
SELECT k.site_id, k.path, p.content_hash, p.updated_at, p.indexable
FROM unnest($1::int[], $2::text[]) AS k(site_id, path)
JOIN pages p ON p.site_id = k.site_id AND p.path = k.path AND {SERVED}
"""  # noqa: S608 (constant)
PAGE_VERSION_BY_PATH = f"""
SELECT content_hash, updated_at, indexable FROM pages p
WHERE site_id = $1 AND path = $2 AND {SERVED}
"""  # noqa: S608 (constant)
# Every live page's validator fingerprint (validators.py): the first 8 bytes of
# md5('<site id> <path> <content hash hex>') as a signed int8, sent as big-endian bytes in
# ascending order. 64 rows, one per value of the top 6 bits, so that no single value is
# huge and the rows concatenate in order. An index-only scan of pages_site_path.
VALIDATOR_FINGERPRINTS = f"""
SELECT string_agg(int8send(fingerprint), ''::bytea ORDER BY fingerprint) AS fingerprints
FROM (
    SELECT ('x' || left(md5(site_id || ' ' || path || ' ' || encode(content_hash, 'hex')), 16))
        ::bit(64)::bigint AS fingerprint
    FROM pages p WHERE {SERVED}
    LIMIT $1
) AS live
GROUP BY fingerprint >> 58
ORDER BY fingerprint >> 58
"""  # noqa: S608 (constant)
# Seconds it may take: about 12 for the 4.1 million bundled pages, a minute or more right
# after a generate, before autovacuum has marked the table all-visible.
VALIDATOR_FINGERPRINTS_SECONDS = 600
# Rows ever written to pages, from the statistics collector (not transactional; counted
# after each writing transaction ends, within seconds): a change without a NOTIFY shows
# here (through a transaction pooler, or by hand).
PAGES_WRITES = """
SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint
FROM pg_stat_user_tables WHERE relid = 'pages'::regclass
"""
REDIRECT = "SELECT to_path FROM redirects WHERE site_id = $1 AND from_path = $2"
SERVICE_ID = "SELECT id FROM services WHERE site_id = $1 AND slug = $2"
LOCATION_ID = "SELECT id FROM locations WHERE site_id = $1 AND slug = $2"

# Filters shared by the list and its count. Only the filters a request uses go into its
# SQL: a generic "$n IS NULL OR ..." plan would be chosen after five runs of a prepared
# statement and scans the whole table.
FILTER_SQL = {
    "service_id": "p.service_id = ${n}",
    "location_id": "p.location_id = ${n}",
    "region": (
        "p.location_id IN (SELECT id FROM locations WHERE site_id = $1 AND region_code = ${n})"
    ),
    "indexable": "p.indexable = ${n}",
    "state": "p.state = ${n}",
}
# A page not served (removed, or waiting to be published) is a tombstone in the change feed.
SUMMARY_COLUMNS = f"""
p.id, p.path, p.title, p.meta_description, p.indexable, p.updated_at,
CASE WHEN NOT ({SERVED}) THEN coalesce(p.deleted_at, p.updated_at) END AS deleted_at,
p.state, p.publish_at, p.change_xid::text AS change_xid,
s.slug AS service_slug, l.slug AS location_slug
"""
LIST_FROM = """
FROM pages p
LEFT JOIN services s ON s.id = p.service_id LEFT JOIN locations l ON l.id = p.location_id
"""
# Pages whose last write the snapshot of a sync token (parameter {n}) could not see. Rows
# written before migration 0011 (NULL) are seen by every snapshot.
UNSEEN = (
    "p.change_xid >= pg_snapshot_xmin(${n}::text::pg_snapshot) "
    "AND NOT pg_visible_in_snapshot(p.change_xid, ${n}::text::pg_snapshot)"
)
# Export rows: the stored document of a live page; in a change feed, a tombstone built
# here for a removed or unpublished one (the site's base URL is parameter {b}).
TOMBSTONE = """
convert_to(json_build_object('path', p.path, 'url', ${b} || p.path, 'deleted', true,
                             'updated_at', p.updated_at)::text, 'UTF8')
"""
EXPORT_COLUMNS = "p.id, p.path, p.updated_at, p.content_hash, p.change_xid::text AS change_xid"
FEED_DOCUMENT = f"CASE WHEN {SERVED} THEN p.document ELSE {TOMBSTONE} END AS document"


@dataclass(frozen=True)
class PageFilters:
    service_id: int | None = None
    location_id: int | None = None
    region: str | None = None
    indexable: bool | None = None
    state: str | None = None  # asked for explicitly: pages in this state (else live ones)

    def where(self, site_id: int) -> tuple[str, list[Any]]:
        """The WHERE conditions (site first) and their arguments, for the filters in use."""
        conditions, arguments = ["p.site_id = $1"], [site_id]
        for name, template in FILTER_SQL.items():
            value = getattr(self, name)
            if value is not None:
                arguments.append(value)
                conditions.append(template.replace("{n}", str(len(arguments))))
        return " AND ".join(conditions), arguments


EVERY_PAGE = PageFilters()


PathKey = tuple[int, str]  # (site id, path)


async def pages_by_paths(connection: Connection, keys: list[PathKey]) -> list[asyncpg.Record]:
    """Live pages (document, content hash, update time, indexable) for these keys; keys
    with no live page are left out."""
    return await _by_paths(connection, PAGES_BY_PATHS, keys)


async def versions_by_paths(connection: Connection, keys: list[PathKey]) -> list[asyncpg.Record]:
    """Only the hash, update time and indexable of live pages: enough for a 304."""
    return await _by_paths(connection, VERSIONS_BY_PATHS, keys)


async def _by_paths(
    connection: Connection, query: str, keys: list[PathKey]
) -> list[asyncpg.Record]:
    return await connection.fetch(query, [site for site, _ in keys], [path for _, path in keys])


async def validator_fingerprints(connection: Connection, limit: int) -> AsyncIterator[bytes]:
    """VALIDATOR_FINGERPRINTS of at most `limit` pages, in ascending runs (in a transaction)."""
    seconds = VALIDATOR_FINGERPRINTS_SECONDS
    await connection.execute(f"SET LOCAL statement_timeout = '{seconds}s'")
    async for row in connection.cursor(VALIDATOR_FINGERPRINTS, limit, prefetch=8, timeout=seconds):
        yield row["fingerprints"]


async def pages_writes(connection: Connection) -> int:
    count: int = await connection.fetchval(PAGES_WRITES)
    return count


async def page_version_by_path(
    connection: Connection, site_id: int, path: str
) -> asyncpg.Record | None:
    return await connection.fetchrow(PAGE_VERSION_BY_PATH, site_id, path)


async def redirect_target(connection: Connection, site_id: int, path: str) -> str | None:
    target: str | None = await connection.fetchval(REDIRECT, site_id, path)
    return target


async def dimension_id(connection: Connection, site_id: int, kind: str, slug: str) -> int | None:
    query = SERVICE_ID if kind == "service" else LOCATION_ID
    found: int | None = await connection.fetchval(query, site_id, slug)
    return found


async def list_live(
    connection: Connection, site_id: int, filters: PageFilters, after_id: int, limit: int
) -> list[asyncpg.Record]:
    """Live pages in id order after `after_id` (keyset); with `filters.state`, the pages
    in that state instead."""
    where, arguments = filters.where(site_id)
    served = SERVED if filters.state is None else "p.deleted_at IS NULL"
    n = len(arguments)
    query = (
        f"SELECT {SUMMARY_COLUMNS} {LIST_FROM} WHERE {where} AND {served} "
        f"AND p.id > ${n + 1} ORDER BY p.id LIMIT ${n + 2}"
    )
    return await connection.fetch(query, *arguments, after_id, limit)


async def list_changes(
    connection: Connection,
    site_id: int,
    filters: PageFilters,
    after: tuple[datetime, int],
    limit: int,
) -> list[asyncpg.Record]:
    """Live pages and tombstones in (updated_at, id) order after `after` (keyset)."""
    where, arguments = filters.where(site_id)
    n = len(arguments)
    query = (
        f"SELECT {SUMMARY_COLUMNS} {LIST_FROM} WHERE {where} AND {IN_FEEDS} "
        f"AND (p.updated_at, p.id) > (${n + 1}::timestamptz, ${n + 2}::bigint) "
        f"ORDER BY p.updated_at, p.id LIMIT ${n + 3}"
    )
    return await connection.fetch(query, *arguments, *after, limit)


async def list_unseen(
    connection: Connection,
    site_id: int,
    filters: PageFilters,
    snapshot: str,
    after: tuple[str, int],
    limit: int,
) -> list[asyncpg.Record]:
    """Live pages and tombstones whose last write `snapshot` could not see, in
    (change_xid, id) order after `after` (keyset)."""
    where, arguments = filters.where(site_id)
    n = len(arguments)
    unseen = UNSEEN.replace("{n}", str(n + 1))
    query = (
        f"SELECT {SUMMARY_COLUMNS} {LIST_FROM} WHERE {where} AND {IN_FEEDS} AND {unseen} "
        f"AND (p.change_xid, p.id) > (${n + 2}::text::xid8, ${n + 3}::bigint) "
        f"ORDER BY p.change_xid, p.id LIMIT ${n + 4}"
    )
    return await connection.fetch(query, *arguments, snapshot, *after, limit)


async def count(
    connection: Connection,
    site_id: int,
    filters: PageFilters,
    since: datetime | None,
    exact: bool,
) -> int:
    """Exact count, or the planner's estimate (cheap at any size, and marked as such)."""
    where, arguments = filters.where(site_id)
    if since is None:
        where += " AND " + (SERVED if filters.state is None else "p.deleted_at IS NULL")
    else:
        arguments.append(since)
        where += f" AND {IN_FEEDS} AND p.updated_at >= ${len(arguments)}"
    if exact:
        total: int = await connection.fetchval(
            f"SELECT count(*) FROM pages p WHERE {where}",  # noqa: S608 (allow-listed SQL)
            *arguments,
        )
        return total
    plan = await connection.fetchval(
        f"EXPLAIN (FORMAT JSON) SELECT 1 FROM pages p WHERE {where}",  # noqa: S608
        *arguments,
    )
    return int(orjson.loads(plan)[0]["Plan"]["Plan Rows"])


async def export_chunk(
    connection: Connection,
    site: Site,
    filters: PageFilters,
    position: tuple[Any, ...],
    limit: int,
) -> list[asyncpg.Record]:
    """The next `limit` export rows (id, path, updated_at, content_hash, change_xid,
    document bytes) of the pages `filters` selects, after `position`.

    `position` is (id,) for live pages, (updated_at, id) for changes, which include
    tombstones, or (snapshot, change_xid, id) for what a sync token's snapshot did not see.
    """
    where, arguments = filters.where(site.id)
    n = len(arguments)
    if len(position) == 1:
        query = (
            f"SELECT {EXPORT_COLUMNS}, p.document FROM pages p WHERE {where} AND {SERVED} "  # noqa: S608 (allow-listed SQL)
            f"AND p.id > ${n + 1} ORDER BY p.id LIMIT ${n + 2}"
        )
        return await connection.fetch(query, *arguments, *position, limit)
    document = FEED_DOCUMENT.replace("{b}", str(n + 1))
    if len(position) == 3:
        unseen = UNSEEN.replace("{n}", str(n + 2))
        query = (
            f"SELECT {EXPORT_COLUMNS}, {document} FROM pages p "  # noqa: S608 (allow-listed SQL)
            f"WHERE {where} AND {IN_FEEDS} AND {unseen} "
            f"AND (p.change_xid, p.id) > (${n + 3}::text::xid8, ${n + 4}::bigint) "
            f"ORDER BY p.change_xid, p.id LIMIT ${n + 5}"
        )
    else:
        query = (
            f"SELECT {EXPORT_COLUMNS}, {document} FROM pages p WHERE {where} AND {IN_FEEDS} "  # noqa: S608 (allow-listed SQL)
            f"AND (p.updated_at, p.id) > (${n + 2}::timestamptz, ${n + 3}::bigint) "
            f"ORDER BY p.updated_at, p.id LIMIT ${n + 4}"
        )
    return await connection.fetch(query, *arguments, site.base_url, *position, limit)
