"""The rendered site: home, hubs, service x location pages, redirects and the 404 page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.datastructures import URL
from starlette.responses import HTMLResponse, RedirectResponse, Response

from seo_engine.db import database
from seo_engine.db.database import Connection
from seo_engine.ingest.sites import Site
from seo_engine.serve import answers, conditional, pages, problems, rendering
from seo_engine.serve.dependencies import AnswerResources, AppSettings, Pool

MAX_PATH = 1000

router = APIRouter(include_in_schema=False)


def _respond(request: Request, rendered: rendering.Rendered) -> Response:
    headers = rendering.page_headers(
        rendered.etag, rendered.modified, rendered.indexable, rendered.alternate
    )
    if conditional.not_modified(request, rendered.etag, rendered.modified):
        return Response(status_code=304, headers=headers)
    return HTMLResponse(rendered.body, headers=headers)


def _not_found(site: Site) -> Response:
    return HTMLResponse(
        rendering.not_found_html(site),
        status_code=404,
        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"},
    )


def _moved(request: Request, path: str) -> Response:
    target = URL(path=path, query=request.url.query)
    return RedirectResponse(
        str(target), status_code=301, headers={"Cache-Control": rendering.HTML_CACHE}
    )


async def _exists(connection: Connection, site: Site, path: str) -> bool:
    if await pages.page_version_by_path(connection, site.id, path) is not None:
        return True
    return await rendering.render_hub(connection, site, path) is not None


def _variants(path: str) -> list[str]:
    lower = path.lower()
    toggled = lower.rstrip("/") if lower.endswith("/") else lower + "/"
    return [variant for variant in dict.fromkeys((lower, toggled)) if variant and variant != path]


KEY_HEADERS = {"Cache-Control": "public, max-age=3600"}


@router.api_route("/{path:path}", methods=["GET", "HEAD"])
async def serve(
    request: Request, path: str, pool: Pool, settings: AppSettings, resources: AnswerResources
) -> Response:
    path = "/" + path
    if path.startswith("/api/"):
        return problems.problem(404, "no such API endpoint; see /docs")
    host = request.headers.get("host", "")
    site = await resources.sites.by_host(pool, settings.acquire_timeout, host)
    if site is None:
        return Response("no site has been added yet", status_code=404, media_type="text/plain")
    if len(path) > MAX_PATH or "\x00" in path or "//" in path:
        return _not_found(site)
    if site.indexnow is not None and path == f"/{site.indexnow.key}.txt":  # IndexNow's key
        return Response(site.indexnow.key, media_type="text/plain", headers=KEY_HEADERS)
    if answers.site_by_host([site], host, path) is not None:  # a path of the page pattern
        conditions = answers.Conditions.read(request.scope)
        answer = await answers.page(resources, site, path, conditions)
        if answer is not None:
            return answers.as_response(answer)
    async with database.acquire(pool, settings.acquire_timeout) as connection:
        hub = await rendering.render_hub(connection, site, path)
        if hub is not None:
            return _respond(request, hub)
        target = await pages.redirect_target(connection, site.id, path)
        if target is not None:
            return _moved(request, target)
        for variant in _variants(path):
            if await _exists(connection, site, variant):
                return _moved(request, variant)
    return _not_found(site)
