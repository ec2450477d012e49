"""Answering a landing page or its JSON document: the one implementation of both.

The hot path (hotpath.py, plain ASGI in front of FastAPI) and FastAPI's routes for the same
URLs (api.py, web.py) both call `document()` or `page()`, so a request gets the same
status, headers and body whichever of them takes it. The order: the worker's page cache,
then the validator index (If-None-Match answered from memory), then the page's version
(a conditional request the index cannot answer), then the page; every error through
`problems.for_error`. Nothing here knows FastAPI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.responses import Response

from seo_engine import etags, paths
from seo_engine.db import database
from seo_engine.ingest.sites import Site
from seo_engine.serve import conditional, html, problems, rendering, surrogate, sync
from seo_engine.serve.directory import SiteDirectory, site_for_host, site_for_slug
from seo_engine.serve.lookups import PageLookups
from seo_engine.serve.pagecache import Entry, PageCache
from seo_engine.serve.validator_index import ValidatorIndex

API_CACHE = "public, max-age=60, s-maxage=300, stale-while-revalidate=600"
Header = tuple[bytes, bytes]
JSON_TYPE = (b"content-type", b"application/json")
HTML_TYPE = (b"content-type", b"text/html; charset=utf-8")
VARY = (b"vary", b"Accept-Encoding")
GZIP = (b"content-encoding", b"gzip")
_API_CACHE = (b"cache-control", API_CACHE.encode())
_HTML_CACHE = (b"cache-control", rendering.HTML_CACHE.encode())


@dataclass(frozen=True, slots=True)
class Resources:
    """What answering needs of the worker, made by the app's lifespan (`app.state.answers`)."""

    pool: database.ReadSource
    acquire_timeout: float
    sites: SiteDirectory
    lookups: PageLookups
    page_cache: PageCache
    validators: ValidatorIndex

    def known_sites(self) -> list[Site]:
        """The sites as loaded (empty before the first load): no coroutine per request."""
        return self.sites.known(self.pool, self.acquire_timeout)

    async def all_sites(self) -> list[Site]:
        """The sites, loading them first if none is known yet."""
        return await self.sites.all(self.pool, self.acquire_timeout)


@dataclass(slots=True)
class Conditions:
    """What an answer depends on in a request besides its URL (read in one pass)."""

    method: str  # GET or HEAD
    path: str
    host: str
    if_none_match: str | None
    if_modified_since: str | None
    gzip: bool
    header_bytes: int  # for the request limits (limits.py)

    @classmethod
    def read(cls, scope: Any) -> Conditions:
        host = ""
        if_none_match = if_modified_since = None
        gzip = False
        size = 0
        for name, value in scope["headers"]:
            size += len(name) + len(value)
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"if-none-match":
                if_none_match = value.decode("latin-1")
            elif name == b"if-modified-since":
                if_modified_since = value.decode("latin-1")
            elif name == b"accept-encoding":
                gzip = b"gzip" in value
        return cls(
            scope["method"], scope["path"], host, if_none_match, if_modified_since, gzip, size
        )

    @property
    def head(self) -> bool:
        return self.method == "HEAD"

    @property
    def where(self) -> str:
        """The request, as the log names it."""
        return f"{self.method} {self.path}"

    @property
    def conditional(self) -> bool:
        return self.if_none_match is not None or self.if_modified_since is not None

    def is_current(self, entry: Entry) -> bool:
        return conditional.is_current(
            self.if_none_match, self.if_modified_since, entry.etag, entry.modified
        )


@dataclass(slots=True)
class Answer:
    """A response as sent: `body` is empty for a 304 or a HEAD (whose headers still give
    the Content-Length a GET would get)."""

    status: int
    headers: list[Header]
    body: bytes


def _raw(headers: dict[str, str], *extra: Header) -> list[Header]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()] + [
        *extra
    ]


def document_headers(tag: str, modified: datetime) -> dict[str, str]:
    return {
        "ETag": tag,
        "Last-Modified": conditional.http_date(modified),
        "Cache-Control": API_CACHE,
    }


class _Document:
    """/api/v1/pages/{service}/{location}: the stored document, as it is."""

    __slots__ = ("key", "location", "path", "service", "site")

    def __init__(self, site: Site, service: str, location: str) -> None:
        self.site = site
        self.service = service
        self.location = location
        self.path = (site.id, site.page_path(service, location))
        self.key = ("document", *self.path)

    def current_tag(self, index: ValidatorIndex, tags: list[str]) -> str | None:
        """The one of `tags` that is the document's current ETag, if any."""
        for tag in tags:
            content_hash = etags.opaque(tag)
            if content_hash is not None and index.holds(*self.path, content_hash):
                return tag
        return None

    @staticmethod
    def not_modified(tag: str) -> Answer:
        return Answer(304, [(b"etag", tag.encode()), _API_CACHE, VARY], b"")

    def entry(self, row: Any, with_body: bool) -> Entry:
        tag = etags.of_document(row["content_hash"])
        version = f"documents-{sync.SCHEMA_VERSION}"
        keys = surrogate.page_keys(
            self.site.slug, self.service, self.location, self.path[1], version
        )
        headers = _raw(document_headers(tag, row["updated_at"]), JSON_TYPE, VARY)
        headers += surrogate.headers(keys)
        return Entry(tag, row["updated_at"], headers, row["document"] if with_body else None)


class _Page:
    """A service x location page, rendered from its stored document."""

    __slots__ = ("key", "path", "site")

    def __init__(self, site: Site, path: str) -> None:
        self.site = site
        self.path = (site.id, path)
        self.key = ("page", *self.path)

    def current_tag(self, index: ValidatorIndex, tags: list[str]) -> str | None:
        """The one of `tags` that is the page's current ETag, if any."""
        version = html.current_template_version()
        for tag in tags:
            content_hash = etags.page_hash(tag, version)
            if content_hash is not None and index.holds(*self.path, content_hash):
                return tag
        return None

    @staticmethod
    def not_modified(tag: str) -> Answer:
        return Answer(304, [(b"etag", tag.encode()), _HTML_CACHE, VARY], b"")

    def entry(self, row: Any, with_body: bool) -> Entry:
        keys = self.keys()
        if not with_body:
            tag = html.page_etag(row["content_hash"])
            headers = rendering.page_headers(tag, row["updated_at"], row["indexable"], None)
            return Entry(tag, row["updated_at"], _raw(headers, HTML_TYPE, VARY, *keys), None)
        rendered = rendering.render_page(self.site, row)
        headers = rendering.page_headers(
            rendered.etag, rendered.modified, rendered.indexable, rendered.alternate
        )
        return Entry(
            rendered.etag,
            rendered.modified,
            _raw(headers, HTML_TYPE, VARY, *keys),
            rendered.body,
        )

    def keys(self) -> list[Header]:
        slugs = paths.page_slugs(self.site.path_pattern, self.path[1])
        if slugs is None:  # not a page path (the caller checked: never)
            return []
        version = html.current_template_version()
        keys = surrogate.page_keys(self.site.slug, *slugs, self.path[1], version)
        return surrogate.headers(keys)


async def document(
    resources: Resources,
    site_slug: str | None,
    service: str,
    location: str,
    request: Conditions,
) -> Answer:
    """A page's JSON document (or a problem: no such site or page, database down...)."""
    try:
        known = resources.known_sites() or await resources.all_sites()
        site = site_for_slug(known, site_slug)
        found = await _answer(resources, _Document(site, service, location), request)
    except Exception as error:
        return _headed(problem(*problems.for_error(error, request.where)), request)
    return found if found is not None else _headed(no_page(service, location), request)


async def page(resources: Resources, site: Site, path: str, request: Conditions) -> Answer | None:
    """A landing page; None when no live page has this path (hubs, redirects and the 404
    page are the routes' business). Errors come back as problems."""
    try:
        return await _answer(resources, _Page(site, path), request)
    except Exception as error:
        return _headed(problem(*problems.for_error(error, request.where)), request)


async def _answer(
    resources: Resources, target: _Document | _Page, request: Conditions
) -> Answer | None:
    cache = resources.page_cache
    entry = cache.get(target.key)
    if entry is not None and request.conditional and request.is_current(entry):
        return target.not_modified(entry.etag)
    if entry is None or entry.body is None:
        lookups, index = resources.lookups, resources.validators
        if (
            request.if_none_match is not None
            and request.if_none_match.strip() != "*"
            and index.ready()
        ):
            tag = target.current_tag(index, etags.listed(request.if_none_match))
            if tag is not None:
                return target.not_modified(tag)
        elif request.conditional:  # If-Modified-Since, *, or no index (yet)
            row = await lookups.versions.get(target.path)
            if row is None:
                return None
            version = target.entry(row, with_body=False)
            if request.is_current(version):
                cache.put(target.key, version)
                return target.not_modified(version.etag)
        row = await lookups.pages.get(target.path)
        if row is None:
            return None
        entry = target.entry(row, with_body=True)
        cache.put(target.key, entry)
    assert entry.body is not None
    body, headers = entry.body, entry.headers
    compressed = cache.gzipped(target.key, entry) if request.gzip else None
    if compressed is not None:
        body, headers = compressed, [*headers, GZIP]
    headers = [*headers, (b"content-length", b"%d" % len(body))]
    return Answer(200, headers, b"" if request.head else body)


def problem(status: int, detail: str, headers: dict[str, str]) -> Answer:
    """A problem, as Compression would send it (problems are too small to compress)."""
    body = problems.content(status, detail)
    length = (b"content-length", b"%d" % len(body))
    return Answer(status, _raw(problems.header_fields(headers), VARY, length), body)


def as_response(answer: Answer) -> Response:
    """An answer as FastAPI's routes return responses, its headers as they are."""
    response = Response(answer.body, answer.status)
    response.raw_headers = answer.headers
    return response


def _headed(answer: Answer, request: Conditions) -> Answer:
    """The answer to a HEAD: its headers (Content-Length included), no body."""
    if request.head:
        answer.body = b""
    return answer


def no_page(service: str, location: str) -> Answer:
    """404 that repeats the request only when it is a plain slug pair (no reflected input)."""
    return problem(404, problems.no_page_detail(service, location), {})


def site_by_host(known: list[Site], host: str, path: str) -> Site | None:
    """The site a page request is for (by Host), when `path` can be one of its pages."""
    site = site_for_host(known, host)
    if site is None or not paths.page_path_regex(site.path_pattern).fullmatch(path):
        return None
    return site
