"""The rendered site: home, hubs, service x location pages, redirects and the 404 page."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.datastructures import URL
from starlette.responses import HTMLResponse, RedirectResponse, Response

from seo_engine import etags
from seo_engine.db import database
from seo_engine.db.database import Connection
from seo_engine.ingest.sites import Site
from seo_engine.serve import conditional, html, hubs, pages, problems
from seo_engine.serve.dependencies import AppSettings, Pool
from seo_engine.serve.directory import SiteDirectory
from seo_engine.serve.lookups import PageLookups

HTML_CACHE = (
    "public, max-age=300, s-maxage=86400, stale-while-revalidate=86400, stale-if-error=604800"
)
MAX_PATH = 1000
SERVICE_HUB = re.compile(r"^/([a-z0-9]+(?:-[a-z0-9]+)*)/(?:page/([1-9][0-9]{0,4})/)?$")
LOCATION_HUB = re.compile(r"^/in/([a-z0-9]+(?:-[a-z0-9]+)*)/$")
REGION_HUB = re.compile(r"^/regions/([a-z0-9]+(?:-[a-z0-9]+)*)/$")

router = APIRouter(include_in_schema=False)


class Rendered:
    """An HTML page ready to send, with what conditional requests need."""

    def __init__(
        self,
        body: str,
        *,
        etag: str | None = None,
        modified: datetime | None = None,
        indexable: bool = True,
        alternate: str | None = None,
    ) -> None:
        self.body = body.encode()
        self.etag = etag or etags.of_bytes(self.body)
        self.modified = modified
        self.indexable = indexable
        self.alternate = alternate


def page_headers(
    etag: str, modified: datetime | None, indexable: bool, alternate: str | None
) -> dict[str, str]:
    headers = {"ETag": etag, "Cache-Control": HTML_CACHE}
    if modified is not None:
        headers["Last-Modified"] = conditional.http_date(modified)
    if not indexable:
        headers["X-Robots-Tag"] = "noindex, follow"
    if alternate:
        headers["Link"] = f'<{alternate}>; rel="alternate"; type="application/json"'
    return headers


def _respond(request: Request, rendered: Rendered) -> Response:
    headers = page_headers(rendered.etag, rendered.modified, rendered.indexable, rendered.alternate)
    if conditional.not_modified(request, rendered.etag, rendered.modified):
        return Response(status_code=304, headers=headers)
    return HTMLResponse(rendered.body, headers=headers)


def document_url(site: Site, service: str, location: str) -> str:
    """Where the page's JSON document lives (relative: the body does not depend on Host)."""
    return f"/api/v1/pages/{service}/{location}?site={site.slug}"


def page_html(
    site: Site,
    page: dict[str, Any],
    content_hash: bytes,
    modified: datetime,
    api_url: str | None,
) -> Rendered:
    """A service x location page from its parsed document (for the server and the export)."""
    body = html.render(
        site,
        "page.html",
        page=page,
        title=page["title"],
        description=page["meta_description"],
        canonical=page["url"],
        indexable=page["indexable"],
        json_url=api_url,
        json_ld=[page["json_ld"]],
        breadcrumbs=page["breadcrumbs"],
    )
    return Rendered(
        body,
        etag=html.page_etag(content_hash),
        modified=modified,
        indexable=page["indexable"],
        alternate=api_url,
    )


def render_page(site: Site, row: Any, *, alternate: bool = True) -> Rendered:
    """A service x location page from its stored row (document, content_hash, updated_at);
    `alternate` links it to its JSON twin (the static export has none)."""
    page = orjson.loads(row["document"])
    api_url = None
    if alternate:
        api_url = document_url(site, page["service"]["slug"], page["location"]["slug"])
    return page_html(site, page, row["content_hash"], row["updated_at"], api_url)


def _hub(site: Site, template: str, title: str, description: str, path: str, **context: Any) -> str:
    crumbs = [{"name": "Home", "url": f"{site.base_url}/"}]
    if path != "/":
        crumbs.append({"name": context.pop("crumb", title), "url": site.base_url + path})
    return html.render(
        site,
        template,
        title=title,
        description=description,
        canonical=site.base_url + path,
        indexable=True,
        json_url=None,
        json_ld=[],
        breadcrumbs=crumbs if path != "/" else [],
        **context,
    )


async def render_hub(connection: Connection, site: Site, path: str) -> Rendered | None:
    """Home, the regions index, a region, a location or a service hub; None if no such hub."""
    if path == "/":
        data = await hubs.home(connection, site.id)
        description = f"{site.name}: find local providers for {len(data['services'])} services."
        return Rendered(_hub(site, "home.html", site.name, description, "/", **data))
    if path == "/regions/":
        regions = await hubs.all_regions(connection, site.id)
        title = f"All regions | {site.name}"
        return Rendered(
            _hub(
                site,
                "regions.html",
                title,
                title,
                path,
                heading="All regions",
                regions=regions,
                crumb="Regions",
            )
        )
    if found := REGION_HUB.match(path):
        locations = await hubs.region(connection, site.id, found[1])
        if not locations:
            return None
        name = locations[0]["region"]
        region = {"slug": found[1], "name": name}
        return Rendered(
            _hub(
                site,
                "region.html",
                f"{name} | {site.name}",
                f"Cities in {name}.",
                path,
                region=region,
                locations=locations,
                crumb=name,
            )
        )
    if found := LOCATION_HUB.match(path):
        hub = await hubs.location_hub(connection, site.id, found[1])
        if hub is None:
            return None
        location, services = hub
        title = f"Services in {location['name']} | {site.name}"
        return Rendered(
            _hub(
                site,
                "location.html",
                title,
                title,
                path,
                location=location,
                services=services,
                crumb=location["name"],
            )
        )
    if found := SERVICE_HUB.match(path):
        page_number = int(found[2] or 1)
        if found[2] == "1":  # page 1 lives at the hub's own path
            return None
        service_hub = await hubs.service_hub(connection, site.id, found[1], page_number)
        if service_hub is None:
            return None
        canonical_path = path
        name = service_hub.service["name"]
        return Rendered(
            _hub(
                site,
                "service.html",
                f"{name} | {site.name}",
                service_hub.service["description"] or name,
                canonical_path,
                service=service_hub.service,
                locations=service_hub.locations,
                page_number=page_number,
                page_count=service_hub.page_count,
                crumb=name,
            )
        )
    return None


def not_found_html(site: Site) -> bytes:
    return html.render(
        site,
        "404.html",
        title=f"Page not found | {site.name}",
        description="There is no page at this address.",
        canonical=f"{site.base_url}/",
        indexable=False,
        json_url=None,
        json_ld=[],
        breadcrumbs=[],
    ).encode()


def _not_found(site: Site) -> Response:
    return HTMLResponse(
        not_found_html(site),
        status_code=404,
        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"},
    )


def _moved(request: Request, path: str) -> Response:
    target = URL(path=path, query=request.url.query)
    return RedirectResponse(str(target), status_code=301, headers={"Cache-Control": HTML_CACHE})


async def _exists(connection: Connection, site: Site, path: str) -> bool:
    if await pages.page_version_by_path(connection, site.id, path) is not None:
        return True
    return await render_hub(connection, site, path) is not None


def _variants(path: str) -> list[str]:
    lower = path.lower()
    toggled = lower.rstrip("/") if lower.endswith("/") else lower + "/"
    return [variant for variant in dict.fromkeys((lower, toggled)) if variant and variant != path]


@router.api_route("/{path:path}", methods=["GET", "HEAD"])
async def serve(request: Request, path: str, pool: Pool, settings: AppSettings) -> Response:
    directory: SiteDirectory = request.app.state.sites
    site = await directory.by_host(pool, settings.acquire_timeout, request.headers.get("host", ""))
    path = "/" + path
    if path.startswith("/api/"):
        return problems.problem(404, "no such API endpoint; see /docs")
    if site is None:
        return Response("no site has been added yet", status_code=404, media_type="text/plain")
    if len(path) > MAX_PATH or "\x00" in path or "//" in path:
        return _not_found(site)
    lookups: PageLookups = request.app.state.lookups
    if request.headers.get("if-none-match") or request.headers.get("if-modified-since"):
        version = await lookups.versions.get((site.id, path))
        if version is not None:
            etag = html.page_etag(version["content_hash"])
            if conditional.not_modified(request, etag, version["updated_at"]):
                headers = page_headers(etag, version["updated_at"], version["indexable"], None)
                return Response(status_code=304, headers=headers)
    row = await lookups.pages.get((site.id, path))
    if row is not None:
        return _respond(request, render_page(site, row))
    async with database.acquire(pool, settings.acquire_timeout) as connection:
        hub = await render_hub(connection, site, path)
        if hub is not None:
            return _respond(request, hub)
        target = await pages.redirect_target(connection, site.id, path)
        if target is not None:
            return _moved(request, target)
        for variant in _variants(path):
            if await _exists(connection, site, variant):
                return _moved(request, variant)
    return _not_found(site)
