"""What publishing holds and will do: the backlog by state, and the days ahead (scheduled
pages at their times, the drip's daily share of the backlog, best quality first)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from seo_engine.db.database import Connection
from seo_engine.ingest.sites import Site
from seo_engine.publish import release
from seo_engine.publish.release import BEST_FIRST, DRIP_FROM

BY_STATE = """
SELECT p.state, count(*) AS pages, count(*) FILTER (WHERE p.indexable) AS indexable,
       min(p.publish_at) AS first_at
FROM pages p WHERE p.site_id = $1 AND p.deleted_at IS NULL
GROUP BY p.state
"""
RECENT_STEPS = """
SELECT at, action, pages, relinked, detail FROM publish_log
WHERE site_id = $1 ORDER BY id DESC LIMIT $2
"""
SCHEDULED_BY_DAY = """
SELECT (p.publish_at AT TIME ZONE 'UTC')::date AS day, count(*) AS pages,
       count(*) FILTER (WHERE p.indexable) AS indexable,
       min(p.quality_score) AS low, max(p.quality_score) AS high,
       (array_agg(p.path ORDER BY p.publish_at, p.id))[1:3] AS examples
FROM pages p
WHERE p.site_id = $1 AND p.state = 'scheduled' AND p.deleted_at IS NULL AND p.publish_at < $2
GROUP BY 1 ORDER BY 1
"""
# The backlog in the order the drip takes it, cut into the days ahead; with each day's
# first pages as examples.
DRIP_BY_DAY = f"""
SELECT n / $2::bigint AS day, count(*) AS pages, count(*) FILTER (WHERE indexable) AS indexable,
       min(quality_score) AS low, max(quality_score) AS high,
       (array_agg(path ORDER BY n))[1:3] AS examples
FROM (
    SELECT row_number() OVER (ORDER BY {BEST_FIRST}) - 1 AS n, p.path, p.indexable,
           p.quality_score
    FROM pages p WHERE p.site_id = $1 AND p.state = 'queued' AND p.deleted_at IS NULL
    ORDER BY {BEST_FIRST} LIMIT $2::bigint * $3::bigint
) AS backlog
GROUP BY 1 ORDER BY 1
"""  # noqa: S608 (constant)


@dataclass
class StateCount:
    pages: int = 0
    indexable: int = 0


@dataclass
class Status:
    site: str
    states: dict[str, StateCount]
    new_pages: str
    per_day: int
    at: str
    next_scheduled: datetime | None
    next_release: datetime | None  # the drip's next release time, while the backlog holds pages
    recent: list[dict[str, object]] = field(default_factory=list)


@dataclass
class Day:
    """What one day ahead publishes (a day in UTC; overdue pages count as today's)."""

    day: date
    scheduled: int = 0
    drip: int = 0
    indexable: int = 0
    low: float | None = None  # lowest and highest quality score among them
    high: float | None = None
    examples: list[str] = field(default_factory=list)

    def add(self, row: asyncpg.Record, *, drip: bool) -> None:
        if drip:
            self.drip += row["pages"]
        else:
            self.scheduled += row["pages"]
        self.indexable += row["indexable"]
        self.low = row["low"] if self.low is None else min(self.low, row["low"])
        self.high = row["high"] if self.high is None else max(self.high, row["high"])
        self.examples = (self.examples + list(row["examples"]))[:3]


async def status(connection: Connection, site: Site, recent: int = 5) -> Status:
    states = {state: StateCount() for state in release.STATES}
    next_scheduled = None
    for row in await connection.fetch(BY_STATE, site.id):
        states[row["state"]] = StateCount(row["pages"], row["indexable"])
        if row["state"] == "scheduled":
            next_scheduled = row["first_at"]
    drip_from = await connection.fetchval(DRIP_FROM, site.id)
    publishing = site.publishing
    next_release = None
    if drip_from is not None and publishing.per_day > 0:
        next_release = release.next_slot(site, drip_from)
    steps = [dict(row) for row in await connection.fetch(RECENT_STEPS, site.id, recent)]
    return Status(
        site.slug,
        states,
        publishing.new_pages,
        publishing.per_day,
        publishing.at,
        next_scheduled,
        next_release,
        steps,
    )


async def preview(connection: Connection, site: Site, days: int) -> list[Day]:
    """What the next `days` days publish, day by day (days when nothing goes live are left
    out). Pages already due (no server was running to publish them) count as today's."""
    now: datetime = await connection.fetchval("SELECT now()")
    today = now.astimezone(UTC).date()
    end = datetime.combine(today, time(), UTC) + release.DAY * days
    ahead: dict[date, Day] = {}
    for row in await connection.fetch(SCHEDULED_BY_DAY, site.id, end):
        day = max(row["day"], today)
        ahead.setdefault(day, Day(day)).add(row, drip=False)
    per_day = site.publishing.per_day
    drip_from = await connection.fetchval(DRIP_FROM, site.id)
    if per_day > 0 and drip_from is not None:
        overdue = len(release.drip_slots(site, drip_from, now))
        upcoming = release.next_slot(site, max(drip_from, now))
        for row in await connection.fetch(DRIP_BY_DAY, site.id, per_day, overdue + days):
            number = row["day"]
            at = now if number < overdue else upcoming + release.DAY * (number - overdue)
            day = at.astimezone(UTC).date()
            if day < today + timedelta(days=days):
                ahead.setdefault(day, Day(day)).add(row, drip=True)
    return [ahead[day] for day in sorted(ahead)]
