"""Sitemaps (an index plus shards of at most 50,000 URLs) and robots.txt, streamed.

Every sitemap lives at the site root: a sitemap may only list URLs under its own directory
(sitemaps.org), and the pages are all over the site."""

from __future__ import annotations

import gzip
import re
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from starlette.datastructures import URL
from starlette.responses import RedirectResponse, Response, StreamingResponse

from seo_engine import etags
from seo_engine.db import database
from seo_engine.db.database import Connection
from seo_engine.generate.visibility import SERVED
from seo_engine.ingest.sites import Site
from seo_engine.serve import hubs
from seo_engine.serve.dependencies import AppSettings, Pool
from seo_engine.serve.directory import SiteDirectory
from seo_engine.serve.rendering import HTML_CACHE

URLS_PER_SHARD = 50_000
CHUNK = 10_000
SHARDS_CACHE_SECONDS = 60.0
SITEMAP_CACHE = "public, max-age=3600, s-maxage=3600, stale-while-revalidate=86400"
XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
URLSET_OPEN = '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
INDEX_OPEN = '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
HUBS_FILE = "sitemap-hubs.xml"
# A shard number as the index writes it: plain ASCII decimal (str.isdigit() also takes "²",
# which int() refuses), no leading zero (a second URL for the same shard).
SHARD_NUMBER = re.compile(r"[1-9][0-9]{0,5}")

# Live, indexable pages cut into shards of URLS_PER_SHARD by id, with each shard's range
# and newest change; computed in one pass and cached for a minute.
SHARDS = f"""
SELECT shard, min(id) AS first_id, max(id) AS last_id, max(updated_at) AS lastmod,
       count(*) AS urls
FROM (
    SELECT id, updated_at, (row_number() OVER (ORDER BY id) - 1) / {URLS_PER_SHARD} AS shard
    FROM pages p WHERE site_id = $1 AND {SERVED} AND indexable
) numbered
GROUP BY shard ORDER BY shard
"""  # noqa: S608 (constant)
SHARD_URLS = f"""
SELECT id, path, updated_at FROM pages p
WHERE site_id = $1 AND id > $2 AND id <= $3 AND {SERVED} AND indexable
ORDER BY id LIMIT $4
"""  # noqa: S608 (constant)
HUB_PATHS = """
SELECT '/' || slug || '/' AS path, updated_at FROM services WHERE site_id = $1
UNION ALL
SELECT '/in/' || slug || '/', updated_at FROM locations WHERE site_id = $1
"""
REGION_SLUGS = f"SELECT DISTINCT {hubs.REGION_SLUG} AS slug FROM locations WHERE site_id = $1"  # noqa: S608
NEWEST_DIMENSION = """
SELECT greatest((SELECT max(updated_at) FROM services WHERE site_id = $1),
                (SELECT max(updated_at) FROM locations WHERE site_id = $1))
"""

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Shard:
    number: int
    first_id: int
    last_id: int
    lastmod: datetime
    urls: int


class ShardCache:
    """Per-site shard boundaries, so the index and each shard agree for a minute, or until
    the pages change (a generate, or pages going live)."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[float, list[Shard]]] = {}

    def pages_changed(self, listening: bool) -> None:
        self._entries.clear()

    async def shards(self, connection: Connection, site_id: int) -> list[Shard]:
        cached = self._entries.get(site_id)
        if cached and time.monotonic() - cached[0] < SHARDS_CACHE_SECONDS:
            return cached[1]
        rows = await connection.fetch(SHARDS, site_id)
        shards = [
            Shard(r["shard"] + 1, r["first_id"], r["last_id"], r["lastmod"], r["urls"])
            for r in rows
        ]
        self._entries[site_id] = (time.monotonic(), shards)
        return shards


def _w3c(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def url_entry(base_url: str, path: str, lastmod: datetime | None) -> str:
    entry = f"<url><loc>{escape(base_url + path)}</loc>"
    if lastmod is not None:
        entry += f"<lastmod>{_w3c(lastmod)}</lastmod>"
    return entry + "</url>\n"


def pages_file(number: int | str) -> str:
    """The file name of page shard `number` (at the site root, as every sitemap is)."""
    return f"sitemap-pages-{number}.xml"


def index_xml(site: Site, shards: list[Shard], hubs_lastmod: datetime | None) -> str:
    """The sitemap index: the hubs sitemap, then one entry per page shard.

    It lists the plain `.xml` files: HTTP gzips them for every crawler that asks, and a
    static host can send the `.gz` beside each (nginx `gzip_static`), so nothing is saved
    by naming the `.gz`, while `.xml` stays readable to any client."""
    parts = [XML_HEAD, INDEX_OPEN]
    hubs_entry = f"<sitemap><loc>{escape(site.base_url)}/{HUBS_FILE}</loc>"
    if hubs_lastmod is not None:
        hubs_entry += f"<lastmod>{_w3c(hubs_lastmod)}</lastmod>"
    parts.append(hubs_entry + "</sitemap>\n")
    for shard in shards:
        parts.append(
            f"<sitemap><loc>{escape(site.base_url)}/{pages_file(shard.number)}</loc>"
            f"<lastmod>{_w3c(shard.lastmod)}</lastmod></sitemap>\n"
        )
    parts.append("</sitemapindex>\n")
    return "".join(parts)


async def shard_chunks(
    pool: database.ReadSource, timeout: float, site: Site, shard: Shard
) -> AsyncIterator[str]:
    """A shard's XML in pieces; no connection is held while a piece is being sent."""
    yield XML_HEAD + URLSET_OPEN
    after = shard.first_id - 1
    while after < shard.last_id:
        async with database.acquire(pool, timeout) as connection:
            rows = await connection.fetch(SHARD_URLS, site.id, after, shard.last_id, CHUNK)
        if not rows:
            break
        yield "".join(url_entry(site.base_url, r["path"], r["updated_at"]) for r in rows)
        after = rows[-1]["id"]
    yield "</urlset>\n"


async def hubs_xml(connection: Connection, site: Site) -> str:
    rows = await connection.fetch(HUB_PATHS, site.id)
    regions = await connection.fetch(REGION_SLUGS, site.id)
    parts = [XML_HEAD, URLSET_OPEN, url_entry(site.base_url, "/", None)]
    parts.append(url_entry(site.base_url, "/regions/", None))
    parts.extend(url_entry(site.base_url, f"/regions/{r['slug']}/", None) for r in regions)
    parts.extend(url_entry(site.base_url, r["path"], r["updated_at"]) for r in rows)
    parts.append("</urlset>\n")
    return "".join(parts)


def robots_txt(site: Site, disallow_all: bool) -> str:
    if disallow_all:
        return "# staging: nothing here is for search engines\nUser-agent: *\nDisallow: /\n"
    return (
        "User-agent: *\n"
        "Allow: /\n"
        "Disallow: /api/\n"
        "Disallow: /docs\n"
        "Disallow: /openapi.json\n"
        "Disallow: /healthz\n"
        "Disallow: /readyz\n"
        "Disallow: /metrics\n"
        f"\nSitemap: {site.base_url}/sitemap.xml\n"
    )


async def _site(request: Request, pool: Any, timeout: float) -> Site | None:
    directory: SiteDirectory = request.app.state.sites
    return await directory.by_host(pool, timeout, request.headers.get("host", ""))


def _current(request: Request, etag: str) -> bool:
    """If-None-Match names the tag (weakly, as everywhere in the app) or is `*`."""
    if_none_match = request.headers.get("if-none-match")
    return if_none_match is not None and etags.none_match(if_none_match, etag)


def _xml(body: str, request: Request, etag: str, compressed: bool = False) -> Response:
    headers = {"ETag": etag, "Cache-Control": SITEMAP_CACHE}
    if _current(request, etag):
        return Response(status_code=304, headers=headers)
    if compressed:
        return Response(
            gzip.compress(body.encode(), 6, mtime=0), headers=headers, media_type="application/gzip"
        )
    return Response(body, headers=headers, media_type="application/xml")


def _etag(*parts: object) -> str:
    return etags.quoted(f"{zlib.crc32(repr(parts).encode()):08x}")


def _missing() -> Response:
    return Response(
        "no such sitemap",
        status_code=404,
        media_type="text/plain",
        headers={"Cache-Control": "no-store"},
    )


@router.api_route("/robots.txt", methods=["GET", "HEAD"])
async def robots(request: Request, pool: Pool, settings: AppSettings) -> Response:
    site = await _site(request, pool, settings.acquire_timeout)
    if site is None:
        return _missing()
    body = robots_txt(site, settings.robots_disallow_all)
    return Response(body, media_type="text/plain", headers={"Cache-Control": SITEMAP_CACHE})


@router.api_route("/sitemap.xml", methods=["GET", "HEAD"])
async def sitemap_index(request: Request, pool: Pool, settings: AppSettings) -> Response:
    site = await _site(request, pool, settings.acquire_timeout)
    if site is None:
        return _missing()
    cache: ShardCache = request.app.state.shards
    async with database.acquire(pool, settings.acquire_timeout) as connection:
        shards = await cache.shards(connection, site.id)
        newest = await connection.fetchval(NEWEST_DIMENSION, site.id)
    etag = _etag(site.id, [(s.first_id, s.last_id, s.lastmod, s.urls) for s in shards], newest)
    return _xml(index_xml(site, shards, newest), request, etag)


def _moved(request: Request, path: str) -> Response:
    """301 to `path`, kept as long as the HTML redirects are."""
    target = URL(path=path, query=request.url.query)
    return RedirectResponse(str(target), status_code=301, headers={"Cache-Control": HTML_CACHE})


def _gz(request: Request) -> str:
    return ".gz" if request.url.path.endswith(".gz") else ""


@router.api_route("/sitemaps/hubs.xml", methods=["GET", "HEAD"])
@router.api_route("/sitemaps/hubs.xml.gz", methods=["GET", "HEAD"])
async def old_hubs_sitemap(request: Request) -> Response:
    """Where the hubs sitemap used to be (under /sitemaps/, which its URLs are not)."""
    return _moved(request, f"/{HUBS_FILE}{_gz(request)}")


@router.api_route("/sitemaps/pages-{number}.xml", methods=["GET", "HEAD"])
@router.api_route("/sitemaps/pages-{number}.xml.gz", methods=["GET", "HEAD"])
async def old_pages_sitemap(request: Request, number: str) -> Response:
    """Where the page shards used to be."""
    if not SHARD_NUMBER.fullmatch(number):
        return _missing()
    return _moved(request, f"/{pages_file(number)}{_gz(request)}")


@router.api_route(f"/{HUBS_FILE}", methods=["GET", "HEAD"])
@router.api_route(f"/{HUBS_FILE}.gz", methods=["GET", "HEAD"])
async def hubs_sitemap(request: Request, pool: Pool, settings: AppSettings) -> Response:
    site = await _site(request, pool, settings.acquire_timeout)
    if site is None:
        return _missing()
    async with database.acquire(pool, settings.acquire_timeout) as connection:
        body = await hubs_xml(connection, site)
    compressed = request.url.path.endswith(".gz")
    return _xml(body, request, _etag(site.id, zlib.crc32(body.encode()), compressed), compressed)


@router.api_route("/sitemap-pages-{number}.xml", methods=["GET", "HEAD"])
@router.api_route("/sitemap-pages-{number}.xml.gz", methods=["GET", "HEAD"])
async def pages_sitemap(
    request: Request, number: str, pool: Pool, settings: AppSettings
) -> Response:
    site = await _site(request, pool, settings.acquire_timeout)
    if site is None or not SHARD_NUMBER.fullmatch(number):
        return _missing()
    cache: ShardCache = request.app.state.shards
    async with database.acquire(pool, settings.acquire_timeout) as connection:
        shards = await cache.shards(connection, site.id)
    shard = next((s for s in shards if s.number == int(number)), None)
    if shard is None:
        return _missing()
    compressed = request.url.path.endswith(".gz")
    etag = _etag(site.id, shard.first_id, shard.last_id, shard.lastmod, shard.urls, compressed)
    headers = {"ETag": etag, "Cache-Control": SITEMAP_CACHE}
    if _current(request, etag):
        return Response(status_code=304, headers=headers)
    chunks = shard_chunks(pool, settings.acquire_timeout, site, shard)
    if compressed:
        return StreamingResponse(_gzip(chunks), headers=headers, media_type="application/gzip")
    return StreamingResponse(
        (chunk.encode() async for chunk in chunks), headers=headers, media_type="application/xml"
    )


async def _gzip(chunks: AsyncIterator[str]) -> AsyncIterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: gzip container
    async for chunk in chunks:
        if data := compressor.compress(chunk.encode()):
            yield data
    yield compressor.flush()
