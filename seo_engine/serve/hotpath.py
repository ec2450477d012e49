"""The hot paths: a page's JSON document, a rendered page, and conditional requests for
both, taken as plain ASGI before FastAPI's per-request machinery (routing, dependency
injection, validation, response classes) and answered by answers.py, the same core
FastAPI's routes for these URLs call.

Taken: GET or HEAD of `/api/v1/pages/{service}/{location}` with no query or `?site=<slug>`
(the form every document URL the API hands out has), and of a path of the site's page
pattern (whatever its query: a page does not depend on it). Everything else goes on to
FastAPI, whose routes stay the documented (OpenAPI) and complete implementation; so does a
page request when there is no live page at that path (hubs, redirects, the 404 page).
"""

from __future__ import annotations

import re
import time
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

from seo_engine import paths
from seo_engine.serve import answers, limits
from seo_engine.serve.answers import Answer, Conditions, Resources

DOCUMENT_PATH = re.compile(rf"/api/v1/pages/({paths.SLUG})/({paths.SLUG})")
SITE_QUERY = re.compile(rf"site=({paths.SLUG})")
NOT_TAKEN = ""  # _site_query: a query the hot path leaves to FastAPI


def _site_query(query: bytes) -> str | None:
    """The slug of `?site=<slug>`, None without a query, NOT_TAKEN for anything else."""
    if not query:
        return None
    found = SITE_QUERY.fullmatch(unquote(query.decode("latin-1")))
    return found[1] if found and len(found[1]) <= paths.MAX_SITE_SLUG else NOT_TAKEN


def _may_be_page(path: str) -> bool:
    """Two or more segments, no trailing slash (hubs), not under a segment the app keeps."""
    return (
        path.count("/") >= 2
        and not path.endswith("/")
        and not path.startswith(paths.RESERVED_PREFIXES)
    )


class HotPaths:
    """ASGI middleware in front of FastAPI for the requests crawlers and builders send most.

    It wraps FastAPI's whole middleware stack (app.py): what it answers skips the others
    (which measured a third of a document's time in the app), so it adds Server-Timing
    itself and leaves oversized requests to the middleware that refuses them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer = await self._answer(scope)
        if answer is None:
            await self.app(scope, receive, send)
            return
        headers = [*answer.headers, limits.server_timing(started)]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def _answer(self, scope: Scope) -> Answer | None:
        """The answer, or None to pass the request on."""
        path: str = scope["path"]
        is_document = path.startswith("/api/v1/pages/")
        if not is_document and not _may_be_page(path):
            return None
        request = Conditions.read(scope)
        headers = scope["headers"]
        if limits.refusal(limits.url_bytes(scope), request.header_bytes, len(headers)):
            return None  # RequestLimits refuses it
        resources: Resources = scope["app"].state.answers
        if is_document:
            found = DOCUMENT_PATH.fullmatch(path)
            query = scope["query_string"]
            site_slug = _site_query(query) if query else None
            if (
                found is None
                or site_slug == NOT_TAKEN
                or len(found[1]) > paths.MAX_SLUG
                or len(found[2]) > paths.MAX_SLUG
            ):
                return None  # FastAPI's route validates it and says why
            return await answers.document(resources, site_slug, found[1], found[2], request)
        try:
            known = resources.known_sites() or await resources.all_sites()
        except Exception:
            return None  # the route answers the outage like any other
        site = answers.site_by_host(known, request.host, path)
        if site is None:
            return None
        return await answers.page(resources, site, path, request)
