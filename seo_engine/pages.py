"""Page queries: one page, keyset-paginated lists, counts, and export chunks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from seo_engine.database import Connection

DOCUMENT_COLUMNS = """
p.id, p.path, p.title, p.meta_description, p.h1, p.intro, p.sections, p.faq, p.links,
p.quality_score, p.indexable, p.content_hash, p.updated_at, p.deleted_at,
s.slug AS service_slug, s.name AS service_name, s.category AS service_category,
l.slug AS location_slug, l.name AS location_name, l.region_name, l.region_code,
l.country_code, l.population, l.latitude, l.longitude
"""
PAGE_BY_SLUGS = f"""
SELECT {DOCUMENT_COLUMNS}
FROM services s
JOIN pages p ON p.site_id = $1 AND p.service_id = s.id AND p.deleted_at IS NULL
JOIN locations l ON l.id = p.location_id AND l.slug = $3 AND l.site_id = $1
WHERE s.site_id = $1 AND s.slug = $2
"""  # noqa: S608 (constant columns)
PAGE_VERSION_BY_SLUGS = """
SELECT p.content_hash, p.updated_at
FROM services s
JOIN pages p ON p.site_id = $1 AND p.service_id = s.id AND p.deleted_at IS NULL
JOIN locations l ON l.id = p.location_id AND l.slug = $3 AND l.site_id = $1
WHERE s.site_id = $1 AND s.slug = $2
"""
PAGE_BY_PATH = f"""
SELECT {DOCUMENT_COLUMNS}
FROM pages p JOIN services s ON s.id = p.service_id JOIN locations l ON l.id = p.location_id
WHERE p.site_id = $1 AND p.path = $2 AND p.deleted_at IS NULL
"""  # noqa: S608 (constant columns)
PAGE_VERSION_BY_PATH = """
SELECT content_hash, updated_at, indexable FROM pages
WHERE site_id = $1 AND path = $2 AND deleted_at IS NULL
"""
REDIRECT = "SELECT to_path FROM redirects WHERE site_id = $1 AND from_path = $2"
SERVICE_ID = "SELECT id FROM services WHERE site_id = $1 AND slug = $2"
LOCATION_ID = "SELECT id FROM locations WHERE site_id = $1 AND slug = $2"

# Filters shared by the list, its count and the export. $1 site, $2 service id,
# $3 location id, $4 region code, $5 indexable.
FILTERS = """
p.site_id = $1
AND ($2::bigint IS NULL OR p.service_id = $2)
AND ($3::bigint IS NULL OR p.location_id = $3)
AND ($4::text IS NULL OR p.location_id IN (
    SELECT id FROM locations WHERE site_id = $1 AND region_code = $4))
AND ($5::boolean IS NULL OR p.indexable = $5)
"""
SUMMARY_COLUMNS = """
p.id, p.path, p.title, p.meta_description, p.indexable, p.updated_at, p.deleted_at,
s.slug AS service_slug, l.slug AS location_slug
"""
# Live pages in id order. $6 last id, $7 limit.
LIST_LIVE = f"""
SELECT {SUMMARY_COLUMNS}
FROM pages p
LEFT JOIN services s ON s.id = p.service_id LEFT JOIN locations l ON l.id = p.location_id
WHERE {FILTERS} AND p.deleted_at IS NULL AND p.id > $6
ORDER BY p.id LIMIT $7
"""  # noqa: S608 (constant fragments)
# Changes (live pages and tombstones) in (updated_at, id) order. $6/$7 position, $8 limit.
LIST_CHANGES = f"""
SELECT {SUMMARY_COLUMNS}
FROM pages p
LEFT JOIN services s ON s.id = p.service_id LEFT JOIN locations l ON l.id = p.location_id
WHERE {FILTERS} AND (p.updated_at, p.id) > ($6::timestamptz, $7::bigint)
ORDER BY p.updated_at, p.id LIMIT $8
"""  # noqa: S608 (constant fragments)
COUNT_LIVE = f"SELECT count(*) FROM pages p WHERE {FILTERS} AND p.deleted_at IS NULL"  # noqa: S608
COUNT_CHANGES = f"SELECT count(*) FROM pages p WHERE {FILTERS} AND p.updated_at >= $6"  # noqa: S608
ESTIMATE_LIVE = (
    f"EXPLAIN (FORMAT JSON) SELECT 1 FROM pages p WHERE {FILTERS} AND p.deleted_at IS NULL"  # noqa: S608
)
ESTIMATE_CHANGES = (
    f"EXPLAIN (FORMAT JSON) SELECT 1 FROM pages p WHERE {FILTERS} AND p.updated_at >= $6"  # noqa: S608
)
EXPORT_LIVE = f"""
SELECT {DOCUMENT_COLUMNS}
FROM pages p JOIN services s ON s.id = p.service_id JOIN locations l ON l.id = p.location_id
WHERE p.site_id = $1 AND p.deleted_at IS NULL AND p.id > $2
ORDER BY p.id LIMIT $3
"""  # noqa: S608 (constant columns)
EXPORT_CHANGES = f"""
SELECT {DOCUMENT_COLUMNS}
FROM pages p
LEFT JOIN services s ON s.id = p.service_id LEFT JOIN locations l ON l.id = p.location_id
WHERE p.site_id = $1 AND (p.updated_at, p.id) > ($2::timestamptz, $3::bigint)
ORDER BY p.updated_at, p.id LIMIT $4
"""  # noqa: S608 (constant columns)


@dataclass(frozen=True)
class PageFilters:
    service_id: int | None = None
    location_id: int | None = None
    region: str | None = None
    indexable: bool | None = None

    def arguments(self, site_id: int) -> tuple[Any, ...]:
        return (site_id, self.service_id, self.location_id, self.region, self.indexable)


async def page_by_slugs(
    connection: Connection, site_id: int, service: str, location: str
) -> asyncpg.Record | None:
    return await connection.fetchrow(PAGE_BY_SLUGS, site_id, service, location)


async def page_by_path(connection: Connection, site_id: int, path: str) -> asyncpg.Record | None:
    return await connection.fetchrow(PAGE_BY_PATH, site_id, path)


async def page_version_by_path(
    connection: Connection, site_id: int, path: str
) -> asyncpg.Record | None:
    return await connection.fetchrow(PAGE_VERSION_BY_PATH, site_id, path)


async def redirect_target(connection: Connection, site_id: int, path: str) -> str | None:
    target: str | None = await connection.fetchval(REDIRECT, site_id, path)
    return target


async def page_version(
    connection: Connection, site_id: int, service: str, location: str
) -> asyncpg.Record | None:
    """Only the hash and time of a page: enough to answer a conditional request."""
    return await connection.fetchrow(PAGE_VERSION_BY_SLUGS, site_id, service, location)


async def dimension_id(connection: Connection, site_id: int, kind: str, slug: str) -> int | None:
    query = SERVICE_ID if kind == "service" else LOCATION_ID
    found: int | None = await connection.fetchval(query, site_id, slug)
    return found


async def list_live(
    connection: Connection, site_id: int, filters: PageFilters, after_id: int, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(LIST_LIVE, *filters.arguments(site_id), after_id, limit)


async def list_changes(
    connection: Connection,
    site_id: int,
    filters: PageFilters,
    after: tuple[datetime, int],
    limit: int,
) -> list[asyncpg.Record]:
    return await connection.fetch(LIST_CHANGES, *filters.arguments(site_id), *after, limit)


async def count(
    connection: Connection,
    site_id: int,
    filters: PageFilters,
    since: datetime | None,
    exact: bool,
) -> int:
    """Exact count, or the planner's estimate (cheap at any size, and marked as such)."""
    arguments = filters.arguments(site_id) + ((since,) if since else ())
    if exact:
        query = COUNT_CHANGES if since else COUNT_LIVE
        total: int = await connection.fetchval(query, *arguments)
        return total
    plan = orjson.loads(
        await connection.fetchval(ESTIMATE_CHANGES if since else ESTIMATE_LIVE, *arguments)
    )
    return int(plan[0]["Plan"]["Plan Rows"])


async def export_chunk(
    connection: Connection, site_id: int, position: tuple[Any, ...], limit: int
) -> list[asyncpg.Record]:
    """The next `limit` page documents' rows after `position` ((id,) or (updated_at, id))."""
    if len(position) == 1:
        return await connection.fetch(EXPORT_LIVE, site_id, position[0], limit)
    return await connection.fetch(EXPORT_CHANGES, site_id, *position, limit)
