"""IndexNow: tell search engines which URLs changed, from the exact content hashes.

What is pending is the difference between the pages and the ledger: a live, indexable
page whose content hash the ledger does not hold as accepted, and a page that went away
(tombstoned) or left the index (noindex) that the ledger holds as accepted live. A push
sends them in batches of at most 10,000 URLs (the protocol's limit) and records each
accepted batch in the ledger in its own transaction before sending the next, so a crash
loses nothing (the difference is computed again) and resends nothing already recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import httpx

from seo_engine.db import database
from seo_engine.db.database import Connection
from seo_engine.generate.visibility import SERVED
from seo_engine.ingest import sites
from seo_engine.ingest.sites import Site

MAX_URLS = 10_000  # per request, by the protocol
MAX_ATTEMPTS = 5
MAX_WAIT_SECONDS = 300.0  # longest Retry-After honoured; longer: the push stops
RETRIED = frozenset((429, 500, 502, 503, 504))
ACCEPTED = frozenset((200, 202))
RESPONSE_CHARS = 200

# Per path, the page row that decides (a live one before tombstones of the same path).
PENDING_ROWS = f"""
SELECT path, hash FROM (
    SELECT DISTINCT ON (p.path) p.path,
           CASE WHEN {SERVED} AND p.indexable THEN p.content_hash END AS hash,
           l.content_hash AS accepted, l.submitted_at IS NOT NULL AS known
    FROM pages p LEFT JOIN indexnow_ledger l ON l.site_id = p.site_id AND l.path = p.path
    WHERE p.site_id = $1
    ORDER BY p.path, p.deleted_at IS NOT NULL, p.id DESC
) AS latest
WHERE (hash IS NOT NULL AND accepted IS DISTINCT FROM hash)
   OR (hash IS NULL AND known AND accepted IS NOT NULL)
"""  # noqa: S608 (constant)
# A push takes the pending URLs once (one pass over the site's pages), then sends them.
SNAPSHOT = f"""
CREATE TEMP TABLE indexnow_pending AS
SELECT row_number() OVER (ORDER BY path) AS n, path, hash FROM ({PENDING_ROWS}) AS pending
"""  # noqa: S608 (constant)
BATCH = "SELECT path, hash FROM indexnow_pending WHERE n > $1 AND n <= $2 ORDER BY n"
DROP_SNAPSHOT = "DROP TABLE IF EXISTS indexnow_pending"
COUNT_PENDING = f"SELECT count(*) FROM ({PENDING_ROWS}) AS pending"  # noqa: S608 (constant)
RECORD = """
INSERT INTO indexnow_ledger AS l
    (site_id, path, content_hash, submitted_at, status, attempts, response, tried_at)
SELECT $1, path, CASE WHEN $3 THEN hash END, CASE WHEN $3 THEN now() END, $4, $5, $6, now()
FROM unnest($2::text[], $7::bytea[]) AS sent(path, hash)
ON CONFLICT (site_id, path) DO UPDATE SET
    content_hash = CASE WHEN $3 THEN excluded.content_hash ELSE l.content_hash END,
    submitted_at = CASE WHEN $3 THEN excluded.submitted_at ELSE l.submitted_at END,
    status = excluded.status, attempts = excluded.attempts, response = excluded.response,
    tried_at = excluded.tried_at
"""
STATUS = """
SELECT count(*) FILTER (WHERE submitted_at IS NOT NULL) AS submitted,
       count(*) FILTER (WHERE submitted_at IS NOT NULL AND content_hash IS NULL) AS gone,
       count(*) FILTER (WHERE status NOT IN (200, 202)) AS failing,
       max(submitted_at) AS last_submitted
FROM indexnow_ledger WHERE site_id = $1
"""


class IndexNowError(Exception):
    """The endpoint refused the submission for good (bad key, wrong host, bad request), or
    kept failing; what was accepted before is recorded."""


class IndexNowBusy(IndexNowError):
    """Another push of the site is running (the server's, or another command's)."""


# One push of a site at a time (a session lock: a push commits batch by batch), so that two
# pushes never send the same pending URLs.
PUSH_LOCK_CLASS = 0x5E10
TRY_PUSH_LOCK = "SELECT pg_try_advisory_lock($1, $2)"
PUSH_UNLOCK = "SELECT pg_advisory_unlock($1, $2)"
INDEXNOW_SITES = "SELECT slug FROM sites WHERE indexnow_key IS NOT NULL ORDER BY id"
log = logging.getLogger(__name__)


@dataclass
class PushReport:
    site: str
    submitted: int = 0  # URLs accepted in this push
    gone: int = 0  # of them, URLs of pages that went away or left the index
    requests: int = 0
    retries: int = 0
    batches: list[int] = field(default_factory=list)


@dataclass
class Status:
    site: str
    key: str | None
    endpoint: str | None
    pending: int
    submitted: int
    gone: int
    failing: int
    last_submitted: datetime | None


def _wait_seconds(response: httpx.Response, attempt: int, backoff: float) -> float:
    """Retry-After (seconds or an HTTP date) when given, else exponential backoff."""
    header = response.headers.get("retry-after", "").strip()
    if header.isdigit():
        return float(header)
    if header:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return float(backoff * 2 ** (attempt - 1))


async def _send(
    client: httpx.AsyncClient,
    site: Site,
    urls: list[str],
    report: PushReport,
    backoff: float,
    sleep: Callable[[float], Awaitable[None]],
) -> tuple[httpx.Response, int]:
    """POST one batch, retrying 429 and 5xx (and connection errors) with backoff."""
    assert site.indexnow is not None
    body = {
        "host": site.domain,
        "key": site.indexnow.key,
        "keyLocation": f"{site.base_url}/{site.indexnow.key}.txt",
        "urlList": urls,
    }
    for attempt in range(1, MAX_ATTEMPTS + 1):
        report.requests += 1
        try:
            response = await client.post(site.indexnow.endpoint, json=body)
        except httpx.TransportError as error:
            if attempt == MAX_ATTEMPTS:
                raise IndexNowError(f"{site.indexnow.endpoint}: {error!r}") from None
            report.retries += 1
            await sleep(backoff * 2 ** (attempt - 1))
            continue
        if response.status_code not in RETRIED or attempt == MAX_ATTEMPTS:
            return response, attempt
        wait = _wait_seconds(response, attempt, backoff)
        if wait > MAX_WAIT_SECONDS:
            return response, attempt
        report.retries += 1
        await sleep(wait)
    raise AssertionError("unreachable")  # the loop returns or raises


async def push(
    connection: Connection,
    site: Site,
    batch: int = MAX_URLS,
    backoff: float = 1.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    client: httpx.AsyncClient | None = None,
) -> PushReport:
    """Submit every pending URL of the site, a batch at a time; raise IndexNowError when
    the endpoint refuses a batch (the batches before it stay recorded)."""
    if site.indexnow is None:
        raise IndexNowError(f"site '{site.slug}' has no [indexnow] key in its site file")
    if not await connection.fetchval(TRY_PUSH_LOCK, PUSH_LOCK_CLASS, site.id):
        raise IndexNowBusy(f"another IndexNow push of site '{site.slug}' is running")
    try:
        return await _push(connection, site, batch, backoff, sleep, client)
    finally:
        if not connection.is_closed():
            with contextlib.suppress(*database.ANY_FAILURE):
                await connection.fetchval(PUSH_UNLOCK, PUSH_LOCK_CLASS, site.id)


async def _push(
    connection: Connection,
    site: Site,
    batch: int,
    backoff: float,
    sleep: Callable[[float], Awaitable[None]],
    client: httpx.AsyncClient | None,
) -> PushReport:
    assert site.indexnow is not None
    report = PushReport(site.slug)
    owned = client is None
    client = client or httpx.AsyncClient(timeout=30, headers={"User-Agent": "seo-engine"})
    size = min(batch, MAX_URLS)
    await connection.execute(DROP_SNAPSHOT)
    await connection.execute(SNAPSHOT, site.id)
    done = 0
    try:
        while rows := await connection.fetch(BATCH, done, done + size):
            done += len(rows)
            paths = [row["path"] for row in rows]
            hashes = [row["hash"] for row in rows]
            urls = [site.base_url + path for path in paths]
            response, attempts = await _send(client, site, urls, report, backoff, sleep)
            accepted = response.status_code in ACCEPTED
            async with connection.transaction():
                await connection.execute(
                    RECORD,
                    site.id,
                    paths,
                    accepted,
                    response.status_code,
                    attempts,
                    response.text[:RESPONSE_CHARS],
                    hashes,
                )
            if not accepted:
                raise IndexNowError(
                    f"{site.indexnow.endpoint} answered {response.status_code} "
                    f"{response.reason_phrase} to a batch of {len(urls):,} URLs: "
                    f"{response.text[:RESPONSE_CHARS]!r}; {report.submitted:,} URLs were "
                    "accepted before it (recorded)"
                )
            report.submitted += len(urls)
            report.gone += sum(1 for value in hashes if value is None)
            report.batches.append(len(urls))
    finally:
        if owned:
            await client.aclose()
        if not connection.is_closed():
            with contextlib.suppress(*database.ANY_FAILURE):  # the error raised comes first
                await connection.execute(DROP_SNAPSHOT)
    return report


async def keep_pushing(pool: asyncpg.Pool, interval: float) -> None:
    """The server's IndexNow clock: every `interval` seconds, push each site with a key
    (one worker at a time: the others find the push lock taken), until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            async with pool.acquire() as connection:
                for row in await connection.fetch(INDEXNOW_SITES):
                    site = await sites.find(connection, row["slug"])
                    with contextlib.suppress(IndexNowBusy):
                        report = await push(connection, site)
                        if report.submitted:
                            log.info(
                                "IndexNow: %d URL(s) of %s accepted", report.submitted, site.slug
                            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("IndexNow push failed; trying again", exc_info=True)


async def status(connection: Connection, site: Site) -> Status:
    row = await connection.fetchrow(STATUS, site.id)
    assert row is not None  # an aggregate always returns a row
    pending = await connection.fetchval(COUNT_PENDING, site.id) if site.indexnow else 0
    return Status(
        site.slug,
        None if site.indexnow is None else site.indexnow.key,
        None if site.indexnow is None else site.indexnow.endpoint,
        pending,
        row["submitted"],
        row["gone"],
        row["failing"],
        row["last_submitted"],
    )
