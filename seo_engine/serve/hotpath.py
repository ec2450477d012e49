"""The hot paths: a page's JSON document, a rendered page, and conditional requests for
both, answered as plain ASGI before FastAPI's per-request machinery (routing, dependency
injection, validation, response classes), from the worker's page cache when it can.

Only the plainest form of each request is taken: GET or HEAD, no query string, a path of
the site's page pattern or `/api/v1/pages/{service}/{location}`, a page that exists.
Everything else — and every such request when the page is missing — goes on to FastAPI,
whose routes for the same URLs stay the documented (OpenAPI) and complete implementation;
both build responses with the same functions, so their answers are the same.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Hashable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import asyncpg
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seo_engine import etags
from seo_engine.db import database
from seo_engine.ingest.sites import Site
from seo_engine.serve import api, conditional, html, limits, problems, web
from seo_engine.serve.directory import (
    AmbiguousSite,
    SiteDirectory,
    UnknownSite,
    site_for_host,
    site_for_slug,
)
from seo_engine.serve.lookups import PageLookups
from seo_engine.serve.pagecache import Entry, PageCache
from seo_engine.serve.validator_index import ValidatorIndex

SLUG = "[a-z0-9]+(?:-[a-z0-9]+)*"
DOCUMENT_PATH = re.compile(rf"/api/v1/pages/({SLUG})/({SLUG})")
MAX_SLUG = 120
JSON_TYPE = (b"content-type", b"application/json")
HTML_TYPE = (b"content-type", b"text/html; charset=utf-8")
VARY = (b"vary", b"Accept-Encoding")
GZIP = (b"content-encoding", b"gzip")
API_CACHE = (b"cache-control", api.API_CACHE.encode())
HTML_CACHE = (b"cache-control", web.HTML_CACHE.encode())
log = logging.getLogger("seo_engine.hotpath")


@lru_cache(maxsize=64)
def page_path(pattern: str) -> re.Pattern[str]:
    """The paths a site's `path_pattern` produces, e.g. /{service}/{location}."""
    parts = re.split(r"(\{service\}|\{location\})", pattern)
    return re.compile(
        "".join(SLUG if part in ("{service}", "{location}") else re.escape(part) for part in parts)
    )


def _opaque(tag: str) -> str | None:
    """What an entity tag holds between its quotes (None when it is not quoted)."""
    return tag[1:-1] if len(tag) > 2 and tag[0] == tag[-1] == '"' else None


def _raw(headers: dict[str, str], *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()] + [
        *extra
    ]


@dataclass(frozen=True, slots=True)
class Resources:
    """The worker's resources the hot paths use, made by the app's lifespan
    (`app.state.hot_paths`): one lookup per request instead of one per resource."""

    pool: asyncpg.Pool
    acquire_timeout: float
    sites: SiteDirectory
    lookups: PageLookups
    page_cache: PageCache
    validators: ValidatorIndex


@dataclass(slots=True)
class _Request:
    """What the hot paths read of a request's headers (one pass over them)."""

    host: str
    if_none_match: str | None
    if_modified_since: str | None
    gzip: bool
    oversized: bool  # over the request limits: RequestLimits will answer it

    @classmethod
    def read(cls, scope: Scope) -> _Request:
        host = ""
        if_none_match = if_modified_since = None
        gzip = False
        headers = scope["headers"]
        size = 0
        for name, value in headers:
            size += len(name) + len(value)
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"if-none-match":
                if_none_match = value.decode("latin-1")
            elif name == b"if-modified-since":
                if_modified_since = value.decode("latin-1")
            elif name == b"accept-encoding":
                gzip = b"gzip" in value
        oversized = (
            size > limits.MAX_HEADER_BYTES
            or len(headers) > limits.MAX_HEADERS
            or len(scope.get("raw_path") or b"") > limits.MAX_URL_BYTES
        )
        return cls(host, if_none_match, if_modified_since, gzip, oversized)

    @property
    def conditional(self) -> bool:
        return self.if_none_match is not None or self.if_modified_since is not None

    def is_current(self, entry: Entry) -> bool:
        return conditional.is_current(
            self.if_none_match, self.if_modified_since, entry.etag, entry.modified
        )


class _Document:
    """/api/v1/pages/{service}/{location}: the stored document, as it is."""

    def __init__(self, site: Site, service: str, location: str) -> None:
        self.path = (site.id, site.page_path(service, location))
        self.key = ("document", *self.path)

    def current_tag(self, index: ValidatorIndex, tags: list[str]) -> str | None:
        """The one of `tags` that is the document's current ETag, if any."""
        for tag in tags:
            content_hash = _opaque(tag)  # documents.etag
            if content_hash is not None and index.holds(*self.path, content_hash):
                return tag
        return None

    @staticmethod
    def not_modified_headers(tag: str) -> list[tuple[bytes, bytes]]:
        return [(b"etag", tag.encode()), API_CACHE, VARY]

    @staticmethod
    def entry(row: Any, with_body: bool) -> Entry:
        tag = etags.of_document(row["content_hash"])
        headers = _raw(api.document_headers(tag, row["updated_at"]), JSON_TYPE, VARY)
        return Entry(tag, row["updated_at"], headers, row["document"] if with_body else None)


class _Page:
    """A service x location page, rendered from its stored document."""

    def __init__(self, site: Site, path: str) -> None:
        self.site = site
        self.path = (site.id, path)
        self.key = ("page", *self.path)

    def current_tag(self, index: ValidatorIndex, tags: list[str]) -> str | None:
        """The one of `tags` that is the page's current ETag, if any."""
        version = html.current_template_version()
        for tag in tags:
            content_hash, _, tag_version = (_opaque(tag) or "").rpartition("-")  # html.page_etag
            if tag_version == version and index.holds(*self.path, content_hash):
                return tag
        return None

    @staticmethod
    def not_modified_headers(tag: str) -> list[tuple[bytes, bytes]]:
        return [(b"etag", tag.encode()), HTML_CACHE, VARY]

    def entry(self, row: Any, with_body: bool) -> Entry:
        if not with_body:
            tag = html.page_etag(row["content_hash"])
            headers = web.page_headers(tag, row["updated_at"], row["indexable"], None)
            return Entry(tag, row["updated_at"], _raw(headers, HTML_TYPE, VARY), None)
        rendered = web.render_page(self.site, row)
        headers = web.page_headers(
            rendered.etag, rendered.modified, rendered.indexable, rendered.alternate
        )
        return Entry(
            rendered.etag, rendered.modified, _raw(headers, HTML_TYPE, VARY), rendered.body
        )


# The app's own paths of two or more segments; one-segment paths (/readyz, /robots.txt…)
# are never taken, so a site whose pattern has one segment is served by FastAPI alone.
NOT_PAGES = ("/api/", "/docs/", "/sitemaps/")


def _may_be_page(path: str) -> bool:
    return path.count("/") >= 2 and not path.endswith("/") and not path.startswith(NOT_PAGES)


class HotPaths:
    """ASGI middleware in front of FastAPI for the requests crawlers and builders send most.

    It wraps FastAPI's whole middleware stack (app.py), error handling included: what it
    answers skips the others (which measured a third of a document's time in the app), so
    it applies their rules itself: request limits, Server-Timing, gzip of cached bodies,
    503 for an unavailable database and a problem+json 500 for anything unexpected.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or scope["query_string"]
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            answered = await self._answer(scope, _Responder(scope, send, started))
        except database.UNAVAILABLE as error:
            reason = getattr(error, "reason", "the database is unavailable")
            await problems.unavailable(reason)(scope, receive, _timed(send, started))
            return
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            await problems.internal_error()(scope, receive, _timed(send, started))
            return
        if not answered:
            await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, respond: _Responder) -> bool:
        """Send the response and return True, or return False to pass the request on."""
        path: str = scope["path"]
        is_document = path.startswith("/api/v1/pages/")
        if not is_document and not _may_be_page(path):
            return False
        resources: Resources = scope["app"].state.hot_paths
        request = _Request.read(scope)
        if request.oversized:
            return False
        directory = resources.sites
        known = directory.known(resources.pool, resources.acquire_timeout) or (
            await directory.all(resources.pool, resources.acquire_timeout)
        )
        target: _Document | _Page
        if is_document:  # the API picks the site by ?site=, else the only one there is
            found = DOCUMENT_PATH.fullmatch(path)
            if found is None or len(found[1]) > MAX_SLUG or len(found[2]) > MAX_SLUG:
                return False
            try:
                site = site_for_slug(known, None)
            except (UnknownSite, AmbiguousSite):
                return False  # FastAPI's route says why
            target = _Document(site, found[1], found[2])
        else:  # the site picks by Host, like the rendered site's route
            chosen = site_for_host(known, request.host)
            if chosen is None or not page_path(chosen.path_pattern).fullmatch(path):
                return False
            target = _Page(chosen, path)
        cache = resources.page_cache
        entry = cache.get(target.key)
        if entry is not None and request.conditional and request.is_current(entry):
            await respond(304, entry.headers, None)
            return True
        if entry is None or entry.body is None:
            lookups, index = resources.lookups, resources.validators
            if (
                request.if_none_match is not None
                and request.if_none_match.strip() != "*"
                and index.ready()
            ):
                tag = target.current_tag(index, etags.listed(request.if_none_match))
                if tag is not None:
                    await respond(304, target.not_modified_headers(tag), None)
                    return True
            elif request.conditional:  # If-Modified-Since, *, or no index (yet)
                row = await lookups.versions.get(target.path)
                if row is None:
                    return False
                version = target.entry(row, with_body=False)
                if request.is_current(version):
                    cache.put(target.key, version)
                    await respond(304, version.headers, None)
                    return True
            row = await lookups.pages.get(target.path)
            if row is None:
                return False
            entry = target.entry(row, with_body=True)
            cache.put(target.key, entry)
        await _send_body(respond, cache, target.key, entry, request.gzip)
        return True


def _timing(started: float) -> tuple[bytes, bytes]:
    """`Server-Timing` (time inside the app), as RequestLimits adds to everything else."""
    return (b"server-timing", b"app;dur=%.1f" % ((time.perf_counter() - started) * 1000))


def _timed(send: Send, started: float) -> Send:
    """`send` adding Server-Timing to the response it starts (for the error responses)."""

    async def timed(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message["headers"], _timing(started)]
        await send(message)

    return timed


class _Responder:
    """Sends one response of the hot paths: its headers (with Content-Length and
    Server-Timing) and its body, none for HEAD or a 304."""

    __slots__ = ("scope", "send", "started")

    def __init__(self, scope: Scope, send: Send, started: float) -> None:
        self.scope, self.send, self.started = scope, send, started

    async def __call__(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes | None
    ) -> None:
        headers = [*headers, _timing(self.started)]
        if body is not None:
            headers.append((b"content-length", b"%d" % len(body)))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        content = body if body is not None and self.scope["method"] != "HEAD" else b""
        await self.send({"type": "http.response.body", "body": content})


async def _send_body(
    respond: _Responder, cache: PageCache, key: Hashable, entry: Entry, gzip: bool
) -> None:
    assert entry.body is not None
    body, headers = entry.body, entry.headers
    compressed = cache.gzipped(key, entry) if gzip else None
    if compressed is not None:
        body, headers = compressed, [*headers, GZIP]
    await respond(200, headers, body)
