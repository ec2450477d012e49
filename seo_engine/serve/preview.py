"""`seo-engine preview`: one page rendered, judged and built exactly as `generate` would
store it and the server would send it, from the current site file and seeds, with nothing
written to the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from seo_engine.db.database import Connection
from seo_engine.generate import audit, copyrows
from seo_engine.generate.copyrows import COLUMNS
from seo_engine.generate.pagebuild import LengthReport, PageBuilder
from seo_engine.generate.render_worker import builder_for
from seo_engine.ingest import sites
from seo_engine.serve import rendering

SAMPLE_SERVICES = 5
# In pg_temp, which comes first in the search path: the audit's queries read it as `pages`.
SAMPLE_TABLE = "CREATE TEMPORARY TABLE pages (LIKE public.pages INCLUDING ALL) ON COMMIT DROP"
T = TypeVar("T")


class PreviewError(Exception):
    """The page asked for does not exist in the site's seeds."""


@dataclass(frozen=True)
class Preview:
    path: str
    document: bytes  # the JSON document, as the API would serve it
    html: bytes  # the page, as the server would render it
    quality: dict[str, Any]  # the document's verdict (score, indexable, reasons, nearest)
    family: int  # pages it was compared with, itself included


async def _builder(
    connection: Connection, site_slug: str | None, site_file: Path | None
) -> PageBuilder:
    """The site as stored, or as the site file being edited defines it (by its slug)."""
    if site_file is not None:
        definition = sites.load_definition(site_file)
        site = sites.as_defined(await sites.find(connection, definition.slug), definition)
    else:
        site = await sites.find(connection, site_slug)
    return await builder_for(connection, site, datetime.now(UTC))


async def preview_page(
    connection: Connection,
    site_slug: str | None,
    site_file: Path | None,
    service_slug: str,
    location_slug: str,
) -> Preview:
    """Render the page of a service in a location. The quality gate compares it with the
    service's pages in every other location, so the whole family is rendered (in this
    process: about as long as one generate worker spends on one service)."""
    builder = await _builder(connection, site_slug, site_file)
    site = builder.site
    service = next((s for s in builder.services.values() if s.slug == service_slug), None)
    if service is None:
        raise PreviewError(f"no service '{service_slug}' in site '{site.slug}'")
    if not any(location.slug == location_slug for location in builder.locations):
        raise PreviewError(
            f"no location '{location_slug}' with pages in site '{site.slug}' "
            f"(a location below min_population = {site.options.min_population} gets none)"
        )
    for page in builder.family(service.id, LengthReport()):
        if page.location.slug == location_slug:
            document, content_hash = builder.document(page)
            parsed = orjson.loads(document)
            api_url = rendering.document_url(site, service_slug, location_slug)
            rendered = rendering.page_html(
                site, parsed, content_hash, datetime.fromisoformat(parsed["updated_at"]), api_url
            )
            return Preview(
                parsed["path"], document, rendered.body, parsed["quality"], len(builder.locations)
            )
    raise AssertionError("a location that has pages was not rendered")  # pragma: no cover


def _spread(items: list[T], count: int) -> list[T]:
    """`count` items evenly spaced over the list (all of them if it is shorter)."""
    if count >= len(items):
        return list(items)
    return [items[index * len(items) // count] for index in range(count)]


async def preview_sample(
    connection: Connection, site_slug: str | None, site_file: Path | None, size: int
) -> audit.Audit:
    """Render and judge a deterministic sample of about `size` pages and audit it.

    The sample is up to SAMPLE_SERVICES services spread over their slugs, each in the same
    locations spread over countries and regions (sorted by country, region and key). Its
    pages are compared with each other only, so similarity is understated against the full
    family: a sample is for tuning templates, `generate` and `audit` give the verdict.
    The rows are the ones generate would COPY, loaded into a temporary `pages` table that
    hides the real one for the audit's queries, and dropped: nothing is stored.
    """
    builder = await _builder(connection, site_slug, site_file)
    services = _spread(sorted(builder.services.values(), key=lambda s: s.slug), SAMPLE_SERVICES)
    if not services or not builder.locations:
        raise PreviewError(f"site '{builder.site.slug}' has no pages to sample (seed it first)")
    ordered = sorted(
        builder.locations,
        key=lambda place: (place.context["country_code"], place.context["region_code"], place.key),
    )
    position = {place.id: index for index, place in enumerate(builder.locations)}
    chosen = _spread(ordered, max(1, size // len(services)))
    locations = sorted(chosen, key=lambda place: position[place.id])
    rows = [
        page.row
        for service in services
        for page in builder.pages(service.id, LengthReport(), locations)
    ]
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(SAMPLE_TABLE)
        await connection.copy_to_table(
            "pages",
            source=copyrows.source(copyrows.payload(rows)),
            columns=COLUMNS,
            format="binary",
        )
        return await audit.audit(connection, builder.site)
    finally:
        await transaction.rollback()
