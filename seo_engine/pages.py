"""Page queries: one page, keyset-paginated lists, counts, and export chunks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from seo_engine.database import Connection
from seo_engine.sites import Site

# The page document (schemas.PageDocument), built by PostgreSQL for the API, the NDJSON
# export and the HTML pages alike, so they can never disagree; its JSON text goes to the
# client without being parsed and re-serialised in Python. `{slug}`, `{name}` and `{base}`
# are the parameters holding the site's slug, name and base URL. It is an expression in
# the query rather than a function: PL/pgSQL measured 1.4x slower per document, and a
# SQL function with a sub-select is planned again by every query that calls it. The JSON-LD
# '@graph' is assembled as text so that its FAQPage node is there only when there are FAQs.
DOCUMENT = """
json_build_object(
    'path', p.path,
    'url', {base} || p.path,
    'site', {slug},
    'service', json_build_object('slug', s.slug, 'name', s.name, 'category', s.category),
    'location', json_build_object(
        'slug', l.slug, 'name', l.name, 'region_name', l.region_name,
        'region_code', l.region_code, 'country_code', l.country_code,
        'population', l.population, 'latitude', l.latitude, 'longitude', l.longitude),
    'title', p.title,
    'meta_description', p.meta_description,
    'h1', p.h1,
    'intro', p.intro,
    'sections', p.sections,
    'faq', p.faq,
    'links', p.links,
    'breadcrumbs', json_build_array(
        json_build_object('name', 'Home', 'url', {base} || '/'),
        json_build_object('name', s.name, 'url', {base} || '/' || s.slug || '/'),
        json_build_object('name', l.name, 'url', {base} || p.path)),
    'json_ld', json_build_object('@context', 'https://schema.org', '@graph', ('[' ||
        json_build_object(
            '@type', 'Service',
            '@id', {base} || p.path || '#service',
            'name', p.h1,
            'serviceType', s.name,
            'category', s.category,
            'description', p.meta_description,
            'url', {base} || p.path,
            'areaServed', json_strip_nulls(json_build_object(
                '@type', 'City',
                'name', l.name,
                'geo', json_build_object(
                    '@type', 'GeoCoordinates', 'latitude', l.latitude, 'longitude', l.longitude),
                'containedInPlace', CASE WHEN l.region_name <> '' THEN
                    json_build_object('@type', 'State', 'name', l.region_name) END)),
            'provider', json_build_object(
                '@type', 'Organization', 'name', {name}, 'url', {base} || '/'))::text
        || ', ' ||
        json_build_object('@type', 'BreadcrumbList', 'itemListElement', json_build_array(
            json_build_object(
                '@type', 'ListItem', 'position', 1, 'name', 'Home', 'item', {base} || '/'),
            json_build_object(
                '@type', 'ListItem', 'position', 2, 'name', s.name,
                'item', {base} || '/' || s.slug || '/'),
            json_build_object(
                '@type', 'ListItem', 'position', 3, 'name', l.name, 'item', {base} || p.path)
        ))::text
        || CASE WHEN json_array_length(p.faq) > 0 THEN ', ' ||
            json_build_object('@type', 'FAQPage', 'mainEntity', (
                SELECT json_agg(json_build_object(
                    '@type', 'Question',
                    'name', item ->> 'question',
                    'acceptedAnswer', json_build_object(
                        '@type', 'Answer', 'text', item ->> 'answer')))
                FROM json_array_elements(p.faq) AS item))::text
           ELSE '' END
        || ']')::json),
    'indexable', p.indexable,
    'quality_score', p.quality_score,
    'updated_at', p.updated_at,
    'etag', '"' || encode(p.content_hash, 'hex') || '"')
"""


def document_sql(slug: str, name: str, base: str) -> str:
    """The document expression with the given parameter references (e.g. "$4")."""
    return (
        DOCUMENT.replace("{slug}", f"{slug}::text")
        .replace("{name}", f"{name}::text")
        .replace("{base}", f"{base}::text")
    )


PAGE_DOCUMENT_BY_SLUGS = f"""
SELECT convert_to(({document_sql("$4", "$5", "$6")})::text, 'UTF8') AS document,
       p.content_hash, p.updated_at
FROM services s
JOIN pages p ON p.site_id = $1 AND p.service_id = s.id AND p.deleted_at IS NULL
JOIN locations l ON l.id = p.location_id AND l.slug = $3 AND l.site_id = $1
WHERE s.site_id = $1 AND s.slug = $2
"""  # noqa: S608 (constant SQL)
PAGE_VERSION_BY_SLUGS = """
SELECT p.content_hash, p.updated_at
FROM services s
JOIN pages p ON p.site_id = $1 AND p.service_id = s.id AND p.deleted_at IS NULL
JOIN locations l ON l.id = p.location_id AND l.slug = $3 AND l.site_id = $1
WHERE s.site_id = $1 AND s.slug = $2
"""
PAGE_BY_PATH = f"""
SELECT ({document_sql("$3", "$4", "$5")})::text AS document, s.slug AS service_slug,
       l.slug AS location_slug, p.content_hash, p.updated_at, p.indexable
FROM pages p JOIN services s ON s.id = p.service_id JOIN locations l ON l.id = p.location_id
WHERE p.site_id = $1 AND p.path = $2 AND p.deleted_at IS NULL
"""  # noqa: S608 (constant SQL)
PAGE_VERSION_BY_PATH = """
SELECT content_hash, updated_at, indexable FROM pages
WHERE site_id = $1 AND path = $2 AND deleted_at IS NULL
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
}
SUMMARY_COLUMNS = """
p.id, p.path, p.title, p.meta_description, p.indexable, p.updated_at, p.deleted_at,
s.slug AS service_slug, l.slug AS location_slug
"""
LIST_FROM = """
FROM pages p
LEFT JOIN services s ON s.id = p.service_id LEFT JOIN locations l ON l.id = p.location_id
"""
# Export rows: the document of a live page, a tombstone for a removed one (changes only).
EXPORT_DOCUMENT = f"""
CASE WHEN p.deleted_at IS NULL THEN {document_sql("$2", "$3", "$4")}
     ELSE json_build_object('path', p.path, 'url', $4 || p.path, 'deleted', true,
                            'updated_at', p.updated_at) END
"""
EXPORT_LIVE = f"""
SELECT p.id, p.updated_at, p.content_hash,
       convert_to(({document_sql("$2", "$3", "$4")})::text, 'UTF8') AS document
FROM pages p JOIN services s ON s.id = p.service_id JOIN locations l ON l.id = p.location_id
WHERE p.site_id = $1 AND p.deleted_at IS NULL AND p.id > $5
ORDER BY p.id LIMIT $6
"""  # noqa: S608 (constant SQL)
EXPORT_CHANGES = f"""
SELECT p.id, p.updated_at, p.content_hash,
       convert_to(({EXPORT_DOCUMENT})::text, 'UTF8') AS document
FROM pages p
LEFT JOIN services s ON s.id = p.service_id LEFT JOIN locations l ON l.id = p.location_id
WHERE p.site_id = $1 AND (p.updated_at, p.id) > ($5::timestamptz, $6::bigint)
ORDER BY p.updated_at, p.id LIMIT $7
"""  # noqa: S608 (constant SQL)


@dataclass(frozen=True)
class PageFilters:
    service_id: int | None = None
    location_id: int | None = None
    region: str | None = None
    indexable: bool | None = None

    def where(self, site_id: int) -> tuple[str, list[Any]]:
        """The WHERE conditions (site first) and their arguments, for the filters in use."""
        conditions, arguments = ["p.site_id = $1"], [site_id]
        for name, template in FILTER_SQL.items():
            value = getattr(self, name)
            if value is not None:
                arguments.append(value)
                conditions.append(template.replace("{n}", str(len(arguments))))
        return " AND ".join(conditions), arguments


def site_arguments(site: Site) -> tuple[str, str, str]:
    """The arguments `page_document` takes after the page: the site's slug, name, base URL."""
    return site.slug, site.name, site.base_url


async def document_by_slugs(
    connection: Connection, site: Site, service: str, location: str
) -> asyncpg.Record | None:
    """A live page's document (UTF-8 JSON bytes), content hash and update time."""
    return await connection.fetchrow(
        PAGE_DOCUMENT_BY_SLUGS, site.id, service, location, *site_arguments(site)
    )


async def page_by_path(connection: Connection, site: Site, path: str) -> asyncpg.Record | None:
    """A live page's document (JSON text) and what its HTML response needs."""
    return await connection.fetchrow(PAGE_BY_PATH, site.id, path, *site_arguments(site))


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
    """Live pages in id order after `after_id` (keyset)."""
    where, arguments = filters.where(site_id)
    n = len(arguments)
    query = (
        f"SELECT {SUMMARY_COLUMNS} {LIST_FROM} WHERE {where} AND p.deleted_at IS NULL "
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
        f"SELECT {SUMMARY_COLUMNS} {LIST_FROM} WHERE {where} "
        f"AND (p.updated_at, p.id) > (${n + 1}::timestamptz, ${n + 2}::bigint) "
        f"ORDER BY p.updated_at, p.id LIMIT ${n + 3}"
    )
    return await connection.fetch(query, *arguments, *after, limit)


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
        where += " AND p.deleted_at IS NULL"
    else:
        arguments.append(since)
        where += f" AND p.updated_at >= ${len(arguments)}"
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
    connection: Connection, site: Site, position: tuple[Any, ...], limit: int
) -> list[asyncpg.Record]:
    """The next `limit` export rows (id, updated_at, content_hash, document bytes) after
    `position`.

    `position` is (id,) for live pages, or (updated_at, id) for changes, which include
    tombstones.
    """
    arguments = (site.id, *site_arguments(site), *position, limit)
    if len(position) == 1:
        return await connection.fetch(EXPORT_LIVE, *arguments)
    return await connection.fetch(EXPORT_CHANGES, *arguments)
