"""/favicon.ico: the site's own icon (named by its site file, stored in the database) or
the app's default one (favicon.ico beside this module), for every browser and for
Google's favicon fetcher, which show it in tabs and search results."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from starlette.responses import Response

from seo_engine import etags
from seo_engine.db import database
from seo_engine.db.database import Connection
from seo_engine.ingest import favicons, sites
from seo_engine.ingest.sites import Site
from seo_engine.serve import conditional
from seo_engine.serve.dependencies import AnswerResources, AppSettings, Pool

# A week: the address is fixed (a browser cannot be told the icon moved), so a new icon
# must reach browsers in days, not a year; the ETag makes each revalidation a 304.
CACHE_CONTROL = "public, max-age=604800, stale-while-revalidate=86400"
KEEP = 64  # sites' icons kept per worker

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Icon:
    body: bytes
    media_type: str
    etag: str


@cache
def default_icon() -> Icon:
    """The shipped icon: a map pin, 16, 32 and 48 px PNG images in one ICO file."""
    body = resources.files("seo_engine.serve").joinpath("favicon.ico").read_bytes()
    return Icon(body, "image/x-icon", etags.of_bytes(body))


# Sites' icons by tag. A tag is a hash of the icon's bytes, so an entry is never stale:
# a site that changes its icon gets a new tag (from the site directory) and a new entry.
_kept: dict[str, Icon] = {}


def etag_of(site: Site | None) -> str:
    """The ETag of the icon a site is served, known without reading the icon."""
    if site is None or site.favicon_tag is None:
        return default_icon().etag
    return etags.quoted(site.favicon_tag)


async def icon_of(connection: Connection, site: Site) -> Icon:
    """The icon the site is served: its own, or the default."""
    stored = await sites.stored_favicon(connection, site.id)
    if stored is None:
        return default_icon()
    body, tag = stored
    return Icon(body, favicons.media_type(body), etags.quoted(tag))


async def _icon(pool: database.ReadSource, acquire_timeout: float, site: Site | None) -> Icon:
    if site is None or site.favicon_tag is None:
        return default_icon()
    if (kept := _kept.get(site.favicon_tag)) is not None:
        return kept
    async with database.acquire(pool, acquire_timeout) as connection:
        icon = await icon_of(connection, site)
    # Kept by the tag read with the bytes: the directory's may be a few seconds old.
    if icon is not default_icon() and (tag := etags.opaque(icon.etag)) is not None:
        if len(_kept) >= KEEP:
            _kept.clear()
        _kept[tag] = icon
    return icon


@router.api_route("/favicon.ico", methods=["GET", "HEAD"])
async def favicon(
    request: Request, pool: Pool, settings: AppSettings, answers: AnswerResources
) -> Response:
    host = request.headers.get("host", "")
    site = await answers.sites.by_host(pool, settings.acquire_timeout, host)
    headers = {"ETag": etag_of(site), "Cache-Control": CACHE_CONTROL}
    if conditional.not_modified(request, headers["ETag"], None):
        return Response(status_code=304, headers=headers)
    icon = await _icon(pool, settings.acquire_timeout, site)
    headers["ETag"] = icon.etag
    return Response(icon.body, media_type=icon.media_type, headers=headers)
