"""JSON API for static site builders under /api/v1/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from seo_engine import paths
from seo_engine.db import database, replicas
from seo_engine.generate import documents
from seo_engine.ingest.sites import Site
from seo_engine.serve import answers, cursors, metrics, pages, problems, schemas
from seo_engine.serve import sync as sync_tokens
from seo_engine.serve.cursors import CursorError
from seo_engine.serve.dependencies import AnswerResources, AppSettings, Pool
from seo_engine.serve.directory import SiteDirectory
from seo_engine.serve.pages import PageFilters

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
EXPORT_CHUNK = 1000
NDJSON = "application/x-ndjson"
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"

PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.Problem, "content": {problems.PROBLEM_TYPE: {}}, "description": text}
    for status, text in (
        (400, "Bad parameter (names it)"),
        (404, "Unknown site or page"),
        (503, "Database unavailable or busy; retry after Retry-After seconds"),
    )
}

router = APIRouter(prefix="/api/v1", tags=["api"], responses=PROBLEMS)

SiteParam = Annotated[
    str | None,
    Query(
        max_length=paths.MAX_SITE_SLUG,
        pattern=paths.SLUG_ANCHORED,
        description="Site slug; may be omitted when the database holds one site.",
    ),
]
SlugParam = Annotated[str | None, Query(max_length=paths.MAX_SLUG, pattern=paths.SLUG_ANCHORED)]
CursorParam = Annotated[
    str | None,
    Query(
        max_length=cursors.MAX_CURSOR_CHARS,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Opaque cursor from next_cursor.",
    ),
]
LimitParam = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"1 to {MAX_LIMIT}.")]
SinceParam = Annotated[
    datetime | None,
    Query(description="Only pages changed at or after this time (ISO 8601); includes tombstones."),
]

PathSlug = Annotated[str, Path(max_length=paths.MAX_SLUG, pattern=paths.SLUG_ANCHORED)]


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(content), status, headers, media_type="application/json")


def directory(request: Request) -> SiteDirectory:
    found: SiteDirectory = request.app.state.sites
    return found


async def resolve_site(
    request: Request, pool: Any, acquire_timeout: float, slug: str | None
) -> Site:
    return await directory(request).resolve(pool, acquire_timeout, slug)


async def cursor_key(request: Request, acquire_timeout: float) -> bytes:
    """The signing key, read once per process (created in the database on first use, so
    read on the primary: a replica may not have it yet)."""
    key: bytes | None = getattr(request.app.state, "cursor_key", None)
    if key is None:
        async with database.acquire(request.app.state.pool, acquire_timeout) as connection:
            key = await cursors.load_key(connection)
        request.app.state.cursor_key = key
    return key


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _next_url(request: Request, cursor: str | None) -> str | None:
    return None if cursor is None else str(request.url.include_query_params(cursor=cursor))


def _listing_headers(next_url: str | None) -> dict[str, str]:
    headers = {"Cache-Control": "no-cache"}
    if next_url:
        headers["Link"] = f'<{next_url}>; rel="next"'
    return headers


@router.get("/sites", response_model=list[schemas.SiteOut], summary="Every site served")
async def list_sites(request: Request, pool: Pool, settings: AppSettings) -> Response:
    known = await directory(request).all(pool, settings.acquire_timeout)
    return json_response(
        [
            {
                "slug": s.slug,
                "name": s.name,
                "base_url": s.base_url,
                "locale": s.locale,
                "path_pattern": s.path_pattern,
            }
            for s in known
        ]
    )


SERVICES = """
SELECT slug, name, category, description, attributes::text AS attributes, updated_at
FROM services WHERE site_id = $1 ORDER BY slug
"""
LOCATIONS = """
SELECT id, slug, name, region_name, region_code, country_code, population, latitude, longitude,
       timezone, attributes::text AS attributes, updated_at
FROM locations
WHERE site_id = $1 AND ($2::text IS NULL OR region_code = $2) AND id > $3
ORDER BY id LIMIT $4
"""


@router.get("/services", response_model=schemas.ServiceList, summary="Every service of a site")
async def list_services(
    request: Request, pool: Pool, settings: AppSettings, site: SiteParam = None
) -> Response:
    chosen = await resolve_site(request, pool, settings.acquire_timeout, site)
    async with database.acquire(pool, settings.acquire_timeout) as connection:
        rows = await connection.fetch(SERVICES, chosen.id)
    items = [{**dict(row), "attributes": orjson.Fragment(row["attributes"])} for row in rows]
    return json_response({"items": items})


@router.get(
    "/locations", response_model=schemas.LocationList, summary="Locations of a site, by cursor"
)
async def list_locations(
    request: Request,
    pool: Pool,
    settings: AppSettings,
    site: SiteParam = None,
    region: Annotated[str | None, Query(max_length=20, pattern=TEXT_PATTERN)] = None,
    cursor: CursorParam = None,
    limit: LimitParam = DEFAULT_LIMIT,
) -> Response:
    chosen = await resolve_site(request, pool, settings.acquire_timeout, site)
    key = await cursor_key(request, settings.acquire_timeout)
    query = f"locations|{chosen.id}|{region}"
    after = cursors.decode(key, query, cursor)[0] if cursor else 0
    if not isinstance(after, int):
        raise CursorError("cursor is not valid")
    async with database.acquire(pool, settings.acquire_timeout) as connection:
        rows = await connection.fetch(LOCATIONS, chosen.id, region, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = cursors.encode(key, query, [rows[-1]["id"]]) if more else None
    next_url = _next_url(request, next_cursor)
    items = [
        {
            **{k: v for k, v in dict(row).items() if k != "id"},
            "attributes": orjson.Fragment(row["attributes"]),
        }
        for row in rows
    ]
    return json_response(
        {"items": items, "next_cursor": next_cursor, "next": next_url},
        headers=_listing_headers(next_url),
    )


async def _filters(
    connection: database.Connection,
    site: Site,
    service: str | None,
    location: str | None,
    region: str | None,
    indexable: bool | None,
    state: str | None = None,
) -> PageFilters | None:
    """Resolve slugs to ids; None when a named service or location does not exist."""
    service_id = location_id = None
    if service is not None:
        service_id = await pages.dimension_id(connection, site.id, "service", service)
        if service_id is None:
            return None
    if location is not None:
        location_id = await pages.dimension_id(connection, site.id, "location", location)
        if location_id is None:
            return None
    return PageFilters(service_id, location_id, region, indexable, state)


def _summary(api_base: str, site: Site, row: Any, waiting: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "path": row["path"],
        "url": site.base_url + row["path"],
        "service": row["service_slug"],
        "location": row["location_slug"],
        "updated_at": row["updated_at"],
    }
    if row["deleted_at"] is not None and not waiting:
        item["deleted"] = True
        return item
    if waiting:  # asked for explicitly: not served, so no document URL
        item.update(
            title=row["title"],
            meta_description=row["meta_description"],
            indexable=row["indexable"],
            state=row["state"],
            publish_at=row["publish_at"],
        )
        return item
    item.update(
        title=row["title"],
        meta_description=row["meta_description"],
        indexable=row["indexable"],
        deleted=False,
        # Formatted, not url_for(): a hundred url_for() calls were most of a list's time.
        document=(
            f"{api_base}/pages/{row['service_slug']}/{row['location_slug']}?site={site.slug}"
        ),
    )
    return item


SyncParam = Annotated[
    str | None,
    Query(
        max_length=cursors.MAX_CURSOR_CHARS,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The `sync_token` of your last sync: every change since (docs/sync.md).",
    ),
]


@router.get(
    "/pages",
    response_model=schemas.PageList,
    summary="Pages of a site in a stable order, by cursor",
    description=(
        "Keyset pagination: by id; with `sync` (a token from an earlier response), every "
        "page changed since, tombstones included; with `updated_since`, by (updated_at, id). "
        "Every response carries `sync_token` (and the Sync-Token header) to resume from. "
        "`count=estimated` comes from the planner."
    ),
)
async def list_pages(
    request: Request,
    pool: Pool,
    settings: AppSettings,
    site: SiteParam = None,
    service: SlugParam = None,
    location: SlugParam = None,
    region: Annotated[str | None, Query(max_length=20, pattern=TEXT_PATTERN)] = None,
    indexable: bool | None = None,
    state: Annotated[
        Literal["scheduled", "queued", "draft"] | None,
        Query(description="Pages waiting to be published in this state (not served)."),
    ] = None,
    sync: SyncParam = None,
    updated_since: SinceParam = None,
    cursor: CursorParam = None,
    limit: LimitParam = DEFAULT_LIMIT,
    count: Literal["none", "estimated", "exact"] = "none",
) -> Response:
    clash = _clash(state=state, sync=sync, updated_since=updated_since, indexable=indexable)
    if clash:
        return problems.problem(400, clash)
    chosen = await resolve_site(request, pool, settings.acquire_timeout, site)
    since = _aware(updated_since) if updated_since else None
    key = await cursor_key(request, settings.acquire_timeout)
    filters_key = (service, location, region)
    query = list_fingerprint(chosen.id, *filters_key, indexable, state, sync, since)
    position = cursors.decode(key, query, cursor) if cursor else None
    token_query = sync_tokens.fingerprint(chosen.id, *filters_key)
    seen = None if sync is None else sync_tokens.snapshot_of(key, token_query, sync)
    if position:  # a later page: the first page's snapshot, read where that one was read
        snapshot, floor = _read_point(position)
        reads = replicas.caught_up(pool, floor)
    else:
        reads = pool
    async with database.acquire(reads, settings.acquire_timeout) as connection:
        # The snapshot before the first page's read: the token every page of this list
        # hands out (a later page carries it in its cursor, with how far that server had
        # replayed: later pages are read where at least that much is, never further back).
        if not position:
            snapshot, floor = await sync_tokens.read_point(connection)
        filters = await _filters(connection, chosen, service, location, region, indexable, state)
        rows = await _page_rows(connection, chosen, filters, since, seen, position, limit + 1)
        total = None
        if count != "none" and filters is not None:
            total = await pages.count(connection, chosen.id, filters, since, count == "exact")
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        if since is not None:
            at = [last["updated_at"].isoformat(), last["id"]]
        elif seen is not None:
            at = [last["change_xid"], last["id"]]
        else:
            at = [last["id"]]
        next_cursor = cursors.encode(key, query, [snapshot, floor, *at])
    next_url = _next_url(request, next_cursor)
    api_base = str(request.base_url).rstrip("/") + router.prefix
    token = sync_tokens.issue(key, token_query, snapshot)
    body: dict[str, Any] = {
        "items": [_summary(api_base, chosen, row, state is not None) for row in rows],
        "next_cursor": next_cursor,
        "next": next_url,
        "sync_token": token,
    }
    if count != "none":
        body["count"] = total or 0
        body["count_type"] = count
    headers = _listing_headers(next_url) | {sync_tokens.HEADER: token}
    return json_response(body, headers=headers)


# A list's cursor: [snapshot, WAL floor, *keyset position]. Version 2 added the floor; a
# cursor of another version is refused (400), never misread.
LIST_CURSOR_VERSION = 2


def list_fingerprint(site_id: int, *parameters: object) -> str:
    """What a page list's cursor is for: its site and every parameter but the cursor and
    limit (service, location, region, indexable, state, sync, updated_since)."""
    parts = [p.isoformat() if isinstance(p, datetime) else p for p in parameters]
    return "|".join(str(part) for part in ("pages", LIST_CURSOR_VERSION, site_id, *parts))


def _read_point(position: list[Any]) -> tuple[str, int]:
    """The snapshot and WAL floor a list's cursor carries."""
    try:
        return str(position[0]), int(position[1])
    except (ValueError, TypeError, IndexError):
        raise CursorError("cursor is not valid") from None


def _clash(**given: object) -> str | None:
    """Parameters that cannot go together, named."""
    if given["state"] is not None and (given["sync"] or given["updated_since"]):
        return "state lists pages waiting to be published; use it without sync or updated_since"
    if given["sync"] is not None and given["updated_since"] is not None:
        return "use sync or updated_since, not both"
    if given["sync"] is not None and given["indexable"] is not None:
        return (
            "indexable cannot be combined with sync (a page leaving the index would be "
            "missed): filter on your side"
        )
    return None


async def _page_rows(
    connection: database.Connection,
    site: Site,
    filters: PageFilters | None,
    since: datetime | None,
    seen: str | None,
    position: list[Any] | None,
    limit: int,
) -> list[Any]:
    """One page of the list: by id, by (updated_at, id), or what `seen` did not see."""
    if filters is None:
        return []
    at = position[2:] if position else None
    try:
        if since is not None:
            start = (datetime.fromisoformat(at[0]), int(at[1])) if at else (since, 0)
            return await pages.list_changes(connection, site.id, filters, start, limit)
        if seen is not None:
            after = (str(at[0]), int(at[1])) if at else sync_tokens.FIRST
            return await pages.list_unseen(connection, site.id, filters, seen, after, limit)
        after_id = int(at[0]) if at else 0
    except (ValueError, TypeError, IndexError):
        raise CursorError("cursor is not valid") from None
    return await pages.list_live(connection, site.id, filters, after_id, limit)


@router.get(
    "/pages/{service}/{location}",
    name="page_document",
    response_model=schemas.PageDocument,
    summary="One whole page document",
    responses={304: {"description": "Not modified (If-None-Match / If-Modified-Since)"}},
)
@router.head("/pages/{service}/{location}", include_in_schema=False)
async def page_document(
    request: Request,
    resources: AnswerResources,
    service: Annotated[PathSlug, Path(description="Service slug")],
    location: Annotated[PathSlug, Path(description="Location slug")],
    site: SiteParam = None,
) -> Response:
    conditions = answers.Conditions.read(request.scope)
    answer = await answers.document(resources, site, service, location, conditions)
    return answers.as_response(answer)


class ExportSlots:
    """At most `size` exports stream at once in a process. A slot is taken before the
    response starts, so that a burst beyond it gets 503s instead of 200s that queue."""

    def __init__(self, size: int) -> None:
        self._free = size

    def take(self) -> bool:
        if self._free <= 0:
            return False
        self._free -= 1
        return True

    def give_back(self) -> None:
        self._free += 1


class _ExportStream(StreamingResponse):
    """The export's response: gives its slot back when it ends, however it ends."""

    def __init__(
        self, lines: AsyncIterator[bytes], slots: ExportSlots, headers: dict[str, str]
    ) -> None:
        super().__init__(lines, media_type=NDJSON, headers={"Cache-Control": "no-store", **headers})
        self._slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics.EXPORTS.inc()
        metrics.EXPORTS_ACTIVE.inc()
        try:
            await super().__call__(scope, receive, send)
        finally:
            metrics.EXPORTS_ACTIVE.dec()
            self._slots.give_back()


@router.get(
    "/export.ndjson",
    summary="Every page document (and tombstones with sync or updated_since), one JSON per line",
    description=(
        "The documents of the live pages a list with the same filters would give; with "
        "`sync` (a token from an earlier list or export with the same filters), every page "
        'changed since, tombstones included. The last line is `{"sync_token": …}`, also '
        "sent in the Sync-Token header."
    ),
    response_class=StreamingResponse,
    responses={200: {"content": {NDJSON: {}}, "description": "PageDocument or Tombstone lines"}},
)
async def export(
    request: Request,
    pool: Pool,
    settings: AppSettings,
    site: SiteParam = None,
    service: SlugParam = None,
    location: SlugParam = None,
    region: Annotated[str | None, Query(max_length=20, pattern=TEXT_PATTERN)] = None,
    sync: SyncParam = None,
    updated_since: SinceParam = None,
) -> Response:
    if sync is not None and updated_since is not None:
        return problems.problem(400, "use sync or updated_since, not both")
    chosen = await resolve_site(request, pool, settings.acquire_timeout, site)
    key = await cursor_key(request, settings.acquire_timeout)
    token_query = sync_tokens.fingerprint(chosen.id, service, location, region)  # as the list's
    seen = None if sync is None else sync_tokens.snapshot_of(key, token_query, sync)
    slots: ExportSlots = request.app.state.export_slots
    if not slots.take():  # taken now, before the 200 is sent: a burst gets 503s, not a queue
        return problems.unavailable("too many exports are running; retry shortly")
    since = _aware(updated_since) if updated_since else None
    timeout = settings.acquire_timeout
    try:
        async with database.acquire(pool, timeout) as connection:
            snapshot, floor = await sync_tokens.read_point(connection)
            filters = await _filters(connection, chosen, service, location, region, None)
    except BaseException:
        slots.give_back()
        raise
    token = sync_tokens.issue(key, token_query, snapshot)

    async def lines() -> AsyncIterator[bytes]:
        # No connection is held across a yield: a client that goes away costs nothing.
        position: tuple[Any, ...] = (0,)
        if since is not None:
            position = (since, 0)
        elif seen is not None:
            position = (seen, *sync_tokens.FIRST)
        # Each chunk from a server that has replayed what the first read saw.
        reads = replicas.caught_up(pool, floor)
        while filters is not None:  # None: a named service or location does not exist
            async with database.acquire(reads, timeout) as connection:
                rows = await pages.export_chunk(connection, chosen, filters, position, EXPORT_CHUNK)
            if not rows:
                break
            yield documents.ndjson(rows)
            position = documents.next_position(rows, position)
        yield orjson.dumps({"sync_token": token}) + b"\n"  # the last line: where to resume

    return _ExportStream(lines(), slots, {sync_tokens.HEADER: token})
