"""Surrogate keys for CDNs, and what to purge after a job changed pages.

Every page and document response names what it was built from, in `Surrogate-Key`
(Fastly and others; space-separated) and `Cache-Tag` (Cloudflare; comma-separated):
the site, its service, its location, the page itself and the version of what renders it
(the page templates, or the documents' schema). After a `generate` or a publishing step,
`changed` finds the pages it changed (those the snapshot taken before it did not see, as a
sync token does: serve/sync.py); the CLI prints their keys and URLs, or `send`s them to a
webhook (SEO_ENGINE_PURGE). Past SEO_ENGINE_PURGE_MAX_KEYS pages, the site's key stands
for them all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from seo_engine.db.database import Connection
from seo_engine.generate.visibility import IN_FEEDS
from seo_engine.ingest import sites
from seo_engine.ingest.sites import Site
from seo_engine.publish import release
from seo_engine.serve import pages, sync

log = logging.getLogger(__name__)

SURROGATE_KEY = b"surrogate-key"
CACHE_TAG = b"cache-tag"
WEBHOOK_ATTEMPTS = 3
WEBHOOK_SECONDS = 10.0
# The pages (served or gone) that a snapshot did not see: what a job committed after the
# snapshot was taken.
CHANGED = f"""
SELECT p.path
FROM pages p
WHERE p.site_id = $1 AND {IN_FEEDS} AND {pages.UNSEEN.replace("{n}", "2")}
ORDER BY p.id
LIMIT $3
"""  # noqa: S608 (constant)


class PurgeError(Exception):
    """The purge webhook did not take the purge."""


def page_keys(site: str, service: str, location: str, path: str, version: str) -> list[str]:
    """The keys of a page or document: site, service, location, page, and `version` (the
    templates' for a page, the documents' schema for a document)."""
    return [
        f"site:{site}",
        f"service:{site}:{service}",
        f"location:{site}:{location}",
        f"page:{site}:{path}",
        f"version:{site}:{version}",
    ]


def headers(keys: list[str]) -> list[tuple[bytes, bytes]]:
    """The response headers carrying `keys`."""
    return [(SURROGATE_KEY, " ".join(keys).encode()), (CACHE_TAG, ",".join(keys).encode())]


@dataclass
class Purge:
    """What changed since the snapshot: the keys (and URLs) to purge."""

    site: str
    pages: int = 0  # changed pages, up to the limit + 1
    everything: bool = False  # over the limit: the site's key stands for every page
    keys: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def body(self) -> dict[str, object]:
        return {
            "site": self.site,
            "everything": self.everything,
            "keys": self.keys,
            "urls": self.urls,
        }


async def changed(connection: Connection, site: Site, snapshot: str, limit: int) -> Purge:
    """The keys and URLs of the pages changed since `snapshot` (pg_current_snapshot())."""
    rows = await connection.fetch(CHANGED, site.id, snapshot, limit + 1)
    purge = Purge(site.slug, pages=len(rows))
    if len(rows) > limit:
        purge.everything = True
        purge.keys = [f"site:{site.slug}"]
        return purge
    for row in rows:
        purge.keys.append(f"page:{site.slug}:{row['path']}")
        purge.urls.append(site.base_url + row["path"])
    return purge


async def deliver(target: str | None, purge: Purge) -> str | None:
    """Send `purge` to the webhook SEO_ENGINE_PURGE names (unset or `print`: nothing to
    send); return why, if the webhook did not take it."""
    if target in (None, "print") or not purge.keys:
        return None
    try:
        await send(str(target), purge)
    except PurgeError as error:
        return str(error)
    return None


def releasing_with_purges(
    target: str, max_keys: int
) -> Callable[[Connection], Awaitable[list[release.ReleaseReport]]]:
    """The server's publishing round (release.release_all_due) followed by the purge of
    what it changed, found as after a CLI step: every page whose last write a snapshot
    taken before the round did not see. Printed means logged here."""

    async def release_and_purge(connection: Connection) -> list[release.ReleaseReport]:
        snapshot = await sync.current_snapshot(connection)
        reports = await release.release_all_due(connection)
        for report in reports:
            site = await sites.find(connection, report.site)
            purge = await changed(connection, site, snapshot, max_keys)
            problem = await deliver(target, purge)
            if target == "print":
                log.info("purge keys (%s): %s", report.site, " ".join(purge.keys))
            elif problem:
                log.warning("%s; purge by hand: %s", problem, " ".join(purge.keys))
        return reports

    return release_and_purge


async def send(webhook: str, purge: Purge) -> None:
    """POST the purge as JSON; retried, then PurgeError."""
    problem = ""
    async with httpx.AsyncClient(timeout=WEBHOOK_SECONDS) as client:
        for attempt in range(WEBHOOK_ATTEMPTS):
            if attempt:
                await asyncio.sleep(attempt)
            try:
                answer = await client.post(webhook, json=purge.body())
            except httpx.HTTPError as error:
                problem = f"{type(error).__name__}: {error}"
                continue
            if answer.is_success:
                return
            problem = f"HTTP {answer.status_code}"
            if answer.status_code < 500 and answer.status_code != 429:
                break  # the webhook refuses it: trying again will not help
    raise PurgeError(f"the purge webhook did not take the purge ({problem})")
