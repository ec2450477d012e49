"""Overrides the templates changed under: a hand edit replaced what the templates wrote in
a field; when they later write something else there (a template or the page's data was
edited), the person who made the edit should look at it again.

For every overridden field of every page, `override_bases` keeps what the templates wrote
when the override's value was set (`template`) and at the last generate (`current`).
`generate` refreshes `current` inside its merge transaction; `seo-engine overrides stale`
lists the fields where the two differ, and `--accept` takes `current` as the new base.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seo_engine.db.database import Connection
from seo_engine.generate.pagebuild import Dimension, PageBuilder
from seo_engine.ingest.sites import Site

EXAMPLES = 5

STAGE = """
CREATE TEMP TABLE override_now (
    service_id bigint, location_id bigint, field text, value text, current text
) ON COMMIT DROP
"""
REFRESH = """
WITH kept AS (
    INSERT INTO override_bases AS b
        (site_id, service_id, location_id, field, value, template, current)
    SELECT $1, service_id, location_id, field, value, current, current FROM override_now
    ON CONFLICT (site_id, service_id, location_id, field) DO UPDATE
    SET value = excluded.value, current = excluded.current,
        template = CASE WHEN b.value = excluded.value THEN b.template ELSE excluded.template END
    WHERE (b.value, b.current) IS DISTINCT FROM (excluded.value, excluded.current)
)
DELETE FROM override_bases b WHERE b.site_id = $1 AND NOT EXISTS (
    SELECT 1 FROM override_now n WHERE n.service_id = b.service_id
      AND n.location_id = b.location_id AND n.field = b.field)
"""
CLEAR = "DELETE FROM override_bases WHERE site_id = $1"
COUNT_STALE = "SELECT count(*) FROM override_bases WHERE site_id = $1 AND template <> current"
SELECT_STALE = """
SELECT sv.slug AS service, l.slug AS location, b.field, b.value, b.template, b.current
FROM override_bases b
JOIN services sv ON sv.id = b.service_id JOIN locations l ON l.id = b.location_id
WHERE b.site_id = $1 AND b.template <> b.current
  AND ($2::text IS NULL OR sv.slug = $2) AND ($3::text IS NULL OR l.slug = $3)
ORDER BY sv.slug, l.slug, b.field
LIMIT $4
"""
ACCEPT = """
UPDATE override_bases b SET template = current
FROM services sv, locations l
WHERE b.site_id = $1 AND b.template <> b.current AND sv.id = b.service_id
  AND l.id = b.location_id AND ($2::text IS NULL OR sv.slug = $2)
  AND ($3::text IS NULL OR l.slug = $3)
"""


@dataclass
class Review:
    """What `generate` found: overridden fields checked, and those stale."""

    checked: int = 0
    stale: int = 0
    examples: list[str] = field(default_factory=list)


def _overridden_pages(builder: PageBuilder) -> list[tuple[Dimension, Dimension]]:
    """Every page of this run at least one override targets, in (service, location) order."""
    edits = builder.overrides
    services, locations = builder.services, builder.location_by_id
    pages = {pair for pair in edits.pairs if pair[0] in services and pair[1] in locations}
    for service_id in edits.services.keys() & services.keys():
        pages.update((service_id, location_id) for location_id in locations)
    for location_id in edits.locations.keys() & locations.keys():
        pages.update((service_id, location_id) for service_id in services)
    return [(services[s], locations[location]) for s, location in sorted(pages)]


async def refresh(connection: Connection, builder: PageBuilder) -> Review:
    """Record what the templates write now in every overridden field (inside the caller's
    transaction); return how many fields are stale."""
    site_id = builder.site.id
    await connection.execute(STAGE)
    rows = []
    for service, location in _overridden_pages(builder):
        chosen = builder.overrides.for_page(service.id, location.id)
        blocks = [name for name in chosen if name in builder.fields.blocks]
        if not blocks:
            continue
        texts = builder.template_texts(service, location)
        for name in blocks:
            current = texts[builder.fields.blocks[name]]
            rows.append((service.id, location.id, name, chosen[name], current))
    await connection.copy_records_to_table("override_now", records=rows)
    await connection.execute(REFRESH, site_id)
    await connection.execute("DROP TABLE override_now")
    review = await counted(connection, builder.site)
    review.checked = len(rows)
    return review


async def counted(connection: Connection, site: Site) -> Review:
    """The stale fields as stored, with a few examples."""
    review = Review(stale=await connection.fetchval(COUNT_STALE, site.id))
    for row in await stale(connection, site.id, limit=EXAMPLES):
        path = site.page_path(row["service"], row["location"])
        review.examples.append(f"{path}: {row['field']}")
    return review


async def stale(
    connection: Connection,
    site_id: int,
    service: str | None = None,
    location: str | None = None,
    limit: int = 100,
) -> list[dict[str, str]]:
    """The overridden fields whose template text changed since their override was set."""
    rows = await connection.fetch(SELECT_STALE, site_id, service, location, limit)
    return [dict(row) for row in rows]


async def accept(
    connection: Connection, site_id: int, service: str | None = None, location: str | None = None
) -> int:
    """Take the current template text as the base of the stale fields (they were reviewed)."""
    status = await connection.execute(ACCEPT, site_id, service, location)
    return int(status.rsplit(" ", 1)[-1])
