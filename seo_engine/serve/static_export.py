"""Write a site to files: every page, hub, 404, favicon, sitemaps and robots.txt (or NDJSON)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from seo_engine.db import database
from seo_engine.db.database import Connection
from seo_engine.generate import documents
from seo_engine.generate.visibility import IN_FEEDS, SERVED
from seo_engine.ingest import sites
from seo_engine.ingest.sites import Site
from seo_engine.serve import favicon, hubs, pages, rendering, sitemaps
from seo_engine.settings import Settings

CHUNK = 1000
COUNT_LIVE = f"SELECT count(*) FROM pages p WHERE site_id = $1 AND {SERVED}"  # noqa: S608
COUNT_SINCE = f"SELECT count(*) FROM pages p WHERE site_id = $1 AND {IN_FEEDS} AND updated_at >= $2"  # noqa: S608
SERVICE_SLUGS = "SELECT slug FROM services WHERE site_id = $1 ORDER BY slug"
LOCATION_SLUGS = "SELECT slug FROM locations WHERE site_id = $1 ORDER BY slug"


class ExportError(Exception):
    """The export cannot be written where it was asked to go."""


@dataclass
class ExportReport:
    site: str
    pages: int = 0
    hubs: int = 0
    sitemaps: int = 0
    target: str = ""


def _inside(root: Path, relative: str) -> Path:
    """The file for a URL path, refusing anything that would land outside `root`."""
    target = (root / relative.lstrip("/")).resolve()
    if root != target and root not in target.parents:
        raise ExportError(f"refusing to write outside {root}: {relative}")
    return target


def _write(root: Path, relative: str, body: bytes) -> None:
    target = _inside(root, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)


def _page_file(path: str) -> str:
    return path + ".html"  # /roof-repair/austin-tx -> roof-repair/austin-tx.html


def _hub_file(path: str) -> str:
    return path + "index.html"  # /roof-repair/ -> roof-repair/index.html


async def _hub_paths(connection: Connection, site: Site) -> list[str]:
    paths = ["/", "/regions/"]
    paths += [f"/regions/{r['slug']}/" for r in await hubs.all_regions(connection, site.id)]
    paths += [f"/in/{r['slug']}/" for r in await connection.fetch(LOCATION_SLUGS, site.id)]
    for row in await connection.fetch(SERVICE_SLUGS, site.id):
        hub = await hubs.service_hub(connection, site.id, row["slug"], 1)
        count = hub.page_count if hub else 1
        paths.append(f"/{row['slug']}/")
        paths += [f"/{row['slug']}/page/{n}/" for n in range(2, count + 1)]
    return paths


async def _write_sitemaps(connection: Connection, site: Site, root: Path) -> int:
    shards = await sitemaps.ShardCache().shards(connection, site.id)
    newest = await connection.fetchval(sitemaps.NEWEST_DIMENSION, site.id)
    _write(root, "sitemap.xml", sitemaps.index_xml(site, shards, newest).encode())
    hubs_xml = (await sitemaps.hubs_xml(connection, site)).encode()
    # At the root, where the server has them: a sitemap may only list URLs under its folder.
    _write(root, sitemaps.HUBS_FILE, hubs_xml)
    _write(root, sitemaps.HUBS_FILE + ".gz", gzip.compress(hubs_xml, 6, mtime=0))
    for shard in shards:
        name = sitemaps.pages_file(shard.number)
        target = _inside(root, name)
        with target.open("wb") as plain, gzip.open(_inside(root, name + ".gz"), "wb", 6) as packed:
            for part in (sitemaps.XML_HEAD, sitemaps.URLSET_OPEN):
                plain.write(part.encode())
                packed.write(part.encode())
            after = shard.first_id - 1
            while after < shard.last_id:
                rows = await connection.fetch(
                    sitemaps.SHARD_URLS, site.id, after, shard.last_id, sitemaps.CHUNK
                )
                if not rows:
                    break
                text = "".join(
                    sitemaps.url_entry(site.base_url, r["path"], r["updated_at"]) for r in rows
                ).encode()
                plain.write(text)
                packed.write(text)
                after = rows[-1]["id"]
            plain.write(b"</urlset>\n")
            packed.write(b"</urlset>\n")
    return len(shards) + 2


async def export_static(
    settings: Settings,
    site_slug: str | None,
    root: Path,
    progress_start: Callable[[int], Callable[[int], None]],
) -> ExportReport:
    """Render the whole site into `root`, streaming pages in chunks (constant memory)."""
    root = root.resolve()
    if root.exists() and not root.is_dir():
        raise ExportError(f"{root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    async with database.session(settings, bulk=True) as connection:
        site = await sites.find(connection, site_slug)
        report = ExportReport(site=site.slug, target=str(root))
        total = await connection.fetchval(COUNT_LIVE, site.id)
        hub_paths = await _hub_paths(connection, site)
        advance = progress_start(total + len(hub_paths))
        position: tuple[Any, ...] = (0,)
        while rows := await pages.export_chunk(connection, site, pages.EVERY_PAGE, position, CHUNK):
            for row in rows:
                _write(
                    root,
                    _page_file(row["path"]),
                    rendering.render_page(site, row, alternate=False).body,
                )
            report.pages += len(rows)
            advance(len(rows))
            position = (rows[-1]["id"],)
        for path in hub_paths:
            rendered = await rendering.render_hub(connection, site, path)
            if rendered is not None:
                _write(root, _hub_file(path), rendered.body)
                report.hubs += 1
            advance(1)
        _write(root, "404.html", rendering.not_found_html(site))
        _write(root, "favicon.ico", (await favicon.icon_of(connection, site)).body)
        _write(root, "robots.txt", sitemaps.robots_txt(site, settings.robots_disallow_all).encode())
        report.sitemaps = await _write_sitemaps(connection, site, root)
    return report


async def export_ndjson(
    settings: Settings,
    site_slug: str | None,
    target: Path,
    since: datetime | None,
    progress_start: Callable[[int], Callable[[int], None]],
) -> ExportReport:
    """Write every page document (and tombstones since `since`) to an NDJSON file."""
    async with database.session(settings, bulk=True) as connection:
        site = await sites.find(connection, site_slug)
        report = ExportReport(site=site.slug, target=str(target))
        if since is None:
            total = await connection.fetchval(COUNT_LIVE, site.id)
        else:
            total = await connection.fetchval(COUNT_SINCE, site.id, since)
        advance = progress_start(total)
        position: tuple[Any, ...] = (0,) if since is None else (since, 0)
        try:
            out = target.open("wb")
        except OSError as error:
            raise ExportError(f"cannot write {target}: {error.strerror}") from None
        with out:
            while rows := await pages.export_chunk(
                connection, site, pages.EVERY_PAGE, position, CHUNK
            ):
                out.write(documents.ndjson(rows))
                report.pages += len(rows)
                advance(len(rows))
                position = documents.next_position(rows, position)
    return report
