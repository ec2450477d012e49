"""The rendered site's HTML: landing pages from their stored documents, hubs and the 404
page. Framework-free: the routes (web.py), the answering core (answers.py) and the static
export all render through here."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson

from seo_engine import etags, paths
from seo_engine.db.database import Connection
from seo_engine.ingest.sites import Site
from seo_engine.serve import conditional, html, hubs, structured_data

HTML_CACHE = (
    "public, max-age=300, s-maxage=86400, stale-while-revalidate=86400, stale-if-error=604800"
)
SERVICE_HUB = re.compile(rf"^/({paths.SLUG})/(?:page/([1-9][0-9]{{0,4}})/)?$")
LOCATION_HUB = re.compile(rf"^/in/({paths.SLUG})/$")
REGION_HUB = re.compile(rf"^/regions/({paths.SLUG})/$")


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
    """A hub's page: the home page says who the site is (WebSite, Organization), every
    other hub shows its breadcrumb trail and carries it as a BreadcrumbList."""
    crumbs = []
    json_ld = [structured_data.home(site)]
    if path != "/":
        crumbs = [
            {"name": "Home", "url": f"{site.base_url}/"},
            {"name": context.pop("crumb", title), "url": site.base_url + path},
        ]
        json_ld = [structured_data.breadcrumb_list(crumbs)]
    return html.render(
        site,
        template,
        title=title,
        description=description,
        canonical=site.base_url + path,
        indexable=True,
        json_url=None,
        json_ld=json_ld,
        breadcrumbs=crumbs,
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
