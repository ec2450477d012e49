"""Publishing steps: pages change state (live, scheduled, queued, draft), and the pages
that link to them get their links rewritten in the same transaction (docs/publishing.md).

Every step takes the site's publishing lock, which `generate` holds for its whole run, so
the links a generate builds and the states it builds them from cannot drift apart. The
server runs `release_due` on a clock (scheduled pages whose time came, and the drip's
daily share of the backlog, best quality first); `seo-engine publish` runs the same steps
on a selection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from seo_engine.db import changes
from seo_engine.db.database import Connection
from seo_engine.generate import documents
from seo_engine.generate.render_worker import builder_for
from seo_engine.generate.visibility import DRIP_CLOCK, PUBLISH_LOCK_CLASS
from seo_engine.ingest import sites
from seo_engine.ingest.sites import Site

log = logging.getLogger(__name__)

TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1, $2)"
LOCK_WAIT_SECONDS = 10.0
STATES = ("live", "scheduled", "queued", "draft")
# The order pages are published in: pages the gate lets into the index first, best first.
BEST_FIRST = "p.indexable DESC, p.quality_score DESC, p.id"
RELINK_BATCH = 1_000
DAY = timedelta(days=1)

# A step's pages, locked, with their state before it.
CHANGE_STATE = """
WITH chosen AS (
    SELECT p.id, p.state AS was FROM pages p
    WHERE p.id = ANY($1::bigint[])
      AND (p.state, p.publish_at) IS DISTINCT FROM ($2::text, $3::timestamptz)
    FOR UPDATE
)
UPDATE pages p SET state = $2::text, publish_at = $3::timestamptz,
    unpublished_at = CASE WHEN $2::text = 'live' THEN NULL
                          WHEN c.was = 'live' THEN now() ELSE p.unpublished_at END,
    updated_at = CASE WHEN (c.was = 'live') <> ($2::text = 'live') THEN now()
                 ELSE p.updated_at END
FROM chosen c WHERE p.id = c.id
RETURNING p.id, p.service_id, p.location_id, c.was
"""
DUE_SCHEDULED = """
SELECT p.id FROM pages p
WHERE p.site_id = $1 AND p.state = 'scheduled' AND p.deleted_at IS NULL AND p.publish_at <= now()
"""
BEST_QUEUED = f"""
SELECT p.id FROM pages p
WHERE p.site_id = $1 AND p.state = 'queued' AND p.deleted_at IS NULL
ORDER BY {BEST_FIRST} LIMIT $2
"""  # noqa: S608 (constant)
DRIP_FROM = "SELECT drip_from FROM sites WHERE id = $1"
DOCUMENTS = """
SELECT p.id, p.service_id, p.location_id, p.document FROM pages p
JOIN unnest($2::bigint[], $3::bigint[]) AS k(service_id, location_id)
  ON p.site_id = $1 AND p.service_id = k.service_id AND p.location_id = k.location_id
WHERE p.deleted_at IS NULL
"""
REWRITE = """
UPDATE pages p SET document = r.document, content_hash = r.content_hash, updated_at = $4
FROM unnest($1::bigint[], $2::bytea[], $3::bytea[]) AS r(id, document, content_hash)
WHERE p.id = r.id
"""
LOG = """
INSERT INTO publish_log (site_id, action, pages, relinked, detail) VALUES ($1, $2, $3, $4, $5)
"""
DUE_SITES = f"""
SELECT s.slug FROM sites s
WHERE EXISTS ({DUE_SCHEDULED.replace("$1", "s.id")})
   OR (s.drip_from IS NOT NULL AND (s.publishing ->> 'per_day')::int > 0)
ORDER BY s.id
"""  # noqa: S608 (constant)


class PublishBusy(Exception):
    """A generate or another publishing step of the site holds its publishing lock."""


class PublishError(Exception):
    """A publishing step cannot be done as asked; the message says why."""


@dataclass
class StepReport:
    site: str
    action: str
    pages: int = 0  # whose state changed
    went_live: int = 0
    went_away: int = 0  # live before, not served now (tombstoned for consumers)
    relinked: int = 0  # other pages whose links changed with them
    seconds: float = 0.0


@dataclass(frozen=True)
class Selection:
    """Which pages a publishing step takes: every filter given must hold."""

    services: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()  # region codes, as the API's `region` filter
    min_score: float | None = None
    max_score: float | None = None
    indexable_only: bool = False
    states: tuple[str, ...] = ()  # their state now; empty: any
    limit: int | None = None  # the best this many (BEST_FIRST)

    def where(self, site_id: int) -> tuple[str, list[Any]]:
        conditions = ["p.site_id = $1", "p.deleted_at IS NULL"]
        arguments: list[Any] = [site_id]

        def add(template: str, value: Any) -> None:
            arguments.append(value)
            conditions.append(template.replace("$n", f"${len(arguments)}"))

        if self.services:
            add(
                "p.service_id IN (SELECT id FROM services WHERE site_id = $1 "
                "AND slug = ANY($n::text[]))",
                list(self.services),
            )
        if self.locations:
            add(
                "p.location_id IN (SELECT id FROM locations WHERE site_id = $1 "
                "AND slug = ANY($n::text[]))",
                list(self.locations),
            )
        if self.regions:
            add(
                "p.location_id IN (SELECT id FROM locations WHERE site_id = $1 "
                "AND region_code = ANY($n::text[]))",
                list(self.regions),
            )
        if self.min_score is not None:
            add("p.quality_score >= $n", self.min_score)
        if self.max_score is not None:
            add("p.quality_score <= $n", self.max_score)
        if self.indexable_only:
            conditions.append("p.indexable")
        if self.states:
            add("p.state = ANY($n::text[])", list(self.states))
        return " AND ".join(conditions), arguments

    async def ids(self, connection: Connection, site_id: int) -> list[int]:
        where, arguments = self.where(site_id)
        query = f"SELECT p.id FROM pages p WHERE {where} ORDER BY {BEST_FIRST}"  # noqa: S608
        if self.limit is not None:
            arguments.append(self.limit)
            query += f" LIMIT ${len(arguments)}"
        return [row["id"] for row in await connection.fetch(query, *arguments)]


async def lock(connection: Connection, site: Site, *, wait: bool) -> bool:
    """Take the site's publishing lock for this transaction. Without `wait`, False when it
    is held; with it, wait up to LOCK_WAIT_SECONDS, then raise PublishBusy."""
    if not wait:
        taken: bool = await connection.fetchval(TRY_LOCK, PUBLISH_LOCK_CLASS, site.id)
        return taken
    deadline = asyncio.get_running_loop().time() + LOCK_WAIT_SECONDS
    while not await connection.fetchval(TRY_LOCK, PUBLISH_LOCK_CLASS, site.id):
        if asyncio.get_running_loop().time() > deadline:
            raise PublishBusy(
                f"a generate or another publishing step of site '{site.slug}' is running; "
                "try again when it is done"
            )
        await asyncio.sleep(0.25)
    return True


async def change(
    connection: Connection,
    site: Site,
    ids: Sequence[int],
    state: str,
    publish_at: datetime | None,
    action: str,
    detail: str = "",
) -> StepReport:
    """Put these pages into `state` (inside the caller's transaction, which holds the
    site's publishing lock), rewrite the links of the live pages that link to those that
    went live or away, and log the step."""
    started = asyncio.get_running_loop().time()
    report = StepReport(site.slug, action)
    rows = await connection.fetch(CHANGE_STATE, list(ids), state, publish_at) if ids else []
    report.pages = len(rows)
    flipped = [row for row in rows if (row["was"] == "live") != (state == "live")]
    if state == "live":
        report.went_live = len(flipped)
    else:
        report.went_away = len(flipped)
    if flipped:
        pairs = {(row["service_id"], row["location_id"]) for row in flipped}
        report.relinked = await _relink(connection, site, pairs, stamp=state == "live")
        await changes.notify(connection)
    await connection.execute(DRIP_CLOCK, site.id, None)
    if report.pages:
        await connection.execute(LOG, site.id, action, report.pages, report.relinked, detail)
    report.seconds = asyncio.get_running_loop().time() - started
    return report


async def _relink(
    connection: Connection, site: Site, pages: set[tuple[int, int]], *, stamp: bool
) -> int:
    """Rebuild the links of `pages` (when they went live: `stamp` dates their documents)
    and of the pages that may link to them; returns how many others changed. Pages that
    are not live are rewritten too: their documents stay exactly what a generate builds."""
    changed_at: datetime = await connection.fetchval("SELECT now()")
    builder = await builder_for(connection, site, changed_at)
    targets = sorted(pages | builder.linked_from(pages))
    others = 0
    for start in range(0, len(targets), RELINK_BATCH):
        batch = targets[start : start + RELINK_BATCH]
        rows = await connection.fetch(
            DOCUMENTS, site.id, [s for s, _ in batch], [location for _, location in batch]
        )
        ids, new_documents, hashes = [], [], []
        for row in rows:
            key = (row["service_id"], row["location_id"])
            service = builder.services.get(row["service_id"])
            location = builder.location_by_id.get(row["location_id"])
            if service is None or location is None:
                continue
            own = stamp and key in pages
            rebuilt = documents.relinked(
                row["document"], builder.links(service, location), changed_at, stamp=own
            )
            if rebuilt is not None:
                ids.append(row["id"])
                new_documents.append(rebuilt[0])
                hashes.append(rebuilt[1])
                others += not own
        if ids:
            await connection.execute(REWRITE, ids, new_documents, hashes, changed_at)
    return others


def drip_slots(site: Site, drip_from: datetime | None, now: datetime) -> list[datetime]:
    """The drip's release times after `drip_from` up to `now` (its daily `at`, UTC)."""
    if drip_from is None or site.publishing.per_day <= 0:
        return []
    first = next_slot(site, drip_from)
    if first > now:
        return []
    return [first + DAY * n for n in range((now - first) // DAY + 1)]


def next_slot(site: Site, after: datetime) -> datetime:
    """The first daily release time of the site strictly after `after`."""
    after = after.astimezone(UTC)
    midnight = after.replace(hour=0, minute=0, second=0, microsecond=0)
    slot = midnight + timedelta(minutes=site.publishing.release_minute)
    return slot if slot > after else slot + DAY


@dataclass
class ReleaseReport:
    site: str
    scheduled: StepReport | None = None
    drip: StepReport | None = None
    slots: list[datetime] = field(default_factory=list)

    @property
    def went_live(self) -> int:
        return sum(step.went_live for step in (self.scheduled, self.drip) if step is not None)


async def release_due(connection: Connection, site: Site, *, wait: bool) -> ReleaseReport | None:
    """Publish what is due (in its own transaction): scheduled pages whose time has come,
    then the drip's share for each daily release time passed. None when the lock is held
    and not waited for."""
    report = ReleaseReport(site.slug)
    async with connection.transaction():
        if not await lock(connection, site, wait=wait):
            return None
        now: datetime = await connection.fetchval("SELECT now()")
        due = [row["id"] for row in await connection.fetch(DUE_SCHEDULED, site.id)]
        if due:
            report.scheduled = await change(connection, site, due, "live", None, "release")
        report.slots = drip_slots(site, await connection.fetchval(DRIP_FROM, site.id), now)
        if report.slots:
            count = site.publishing.per_day * len(report.slots)
            best = [row["id"] for row in await connection.fetch(BEST_QUEUED, site.id, count)]
            detail = f"drip: {len(report.slots)} release(s) of {site.publishing.per_day}"
            report.drip = await change(connection, site, best, "live", None, "drip", detail)
            await connection.execute(DRIP_CLOCK, site.id, report.slots[-1])
    return report


async def release_all_due(connection: Connection) -> list[ReleaseReport]:
    """`release_due` for every site with something that may be due; a site whose lock is
    held (a generate is running) is left for the next round."""
    reports = []
    for row in await connection.fetch(DUE_SITES):
        site = await sites.find(connection, row["slug"])
        report = await release_due(connection, site, wait=False)
        if report is not None and report.went_live:
            reports.append(report)
    return reports


async def keep_releasing(
    pool: asyncpg.Pool,
    interval: float,
    release_round: Callable[[Connection], Awaitable[list[ReleaseReport]]] | None = None,
) -> None:
    """The server's publishing clock: every `interval` seconds, release what is due (by
    `release_round`, release_all_due when not given), until cancelled. A failure (the
    database away, say) is logged and tried again next round."""
    while True:
        await asyncio.sleep(interval)
        try:
            async with pool.acquire() as connection:
                for report in await (release_round or release_all_due)(connection):
                    log.info("published %d page(s) of site %s", report.went_live, report.site)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("publishing round failed; trying again", exc_info=True)


ACTIONS = {"live": "live", "scheduled": "schedule", "queued": "queue", "draft": "draft"}


def check(site: Site, state: str, publish_at: datetime | None, now: datetime) -> None:
    """Refuse a step that cannot do what it says (PublishError names why)."""
    if state == "queued" and site.publishing.per_day <= 0:
        raise PublishError(
            f"site '{site.slug}' has no drip: set per_day in its [publishing] table (and "
            "`sites add` it again) before queueing pages"
        )
    if state == "scheduled" and (publish_at is None or publish_at <= now):
        raise PublishError("--at must be a time in the future (to publish now: publish live)")


async def step(
    connection: Connection,
    site: Site,
    ids: Sequence[int],
    state: str,
    publish_at: datetime | None,
) -> StepReport:
    """A `seo-engine publish` step, once `check` passed: `change` with its name and time
    in the log."""
    detail = "" if publish_at is None else f"at {publish_at.isoformat(timespec='minutes')}"
    return await change(connection, site, ids, state, publish_at, ACTIONS[state], detail)
