"""`seo-engine preview`: one page rendered, judged and built exactly as `generate` would
store it and the server would send it, from the current site file and seeds, with nothing
written to the database."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import orjson

from seo_engine.db.database import Connection
from seo_engine.generate import audit, copyrows, quality
from seo_engine.generate.copyrows import COLUMNS
from seo_engine.generate.pagebuild import Dimension, LengthReport, Near, PageBuilder
from seo_engine.generate.render_worker import RENDER_BATCH, builder_for
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
    """Render the page of a service in a location and judge it as a full generate would:
    against the service's pages in every other location (its family, all rendered here:
    about as long as one generate worker spends on one service) and the other services'
    pages in its location (its place)."""
    builder = await _builder(connection, site_slug, site_file)
    site = builder.site
    service = next((s for s in builder.services.values() if s.slug == service_slug), None)
    if service is None:
        raise PreviewError(f"no service '{service_slug}' in site '{site.slug}'")
    location = next((place for place in builder.locations if place.slug == location_slug), None)
    if location is None:
        raise PreviewError(
            f"no location '{location_slug}' with pages in site '{site.slug}' "
            f"(a location below min_population = {site.options.min_population} gets none)"
        )
    family = _compared(builder, [service], builder.locations)
    place = _compared(builder, list(builder.services.values()), [location])
    mine = (service.id, location.id)
    page = builder.judged_row(
        service,
        location,
        builder.render(service, location, LengthReport()),
        family.in_family[mine],
        place.in_place[mine],
        family.same_titles[mine],
        family.same_descriptions[mine],
    )
    parsed = orjson.loads(page.document)
    api_url = rendering.document_url(site, service_slug, location_slug)
    rendered = rendering.page_html(
        site, parsed, page.content_hash, datetime.fromisoformat(parsed["updated_at"]), api_url
    )
    return Preview(
        parsed["path"], page.document, rendered.body, parsed["quality"], len(builder.locations)
    )


Pair = tuple[int, int]  # (service id, location id)


@dataclass(frozen=True)
class _Comparison:
    """What the pages of some services in some locations say of each other, by page."""

    in_family: dict[Pair, Near]  # its nearest page of the same service among them
    in_place: dict[Pair, Near]  # its nearest page in the same location among them
    same_titles: dict[Pair, int]  # pages of its service among them with its title key
    same_descriptions: dict[Pair, int]


def _compared(
    builder: PageBuilder, services: list[Dimension], locations: list[Dimension]
) -> _Comparison:
    """Render every page of these services in these locations and compare them as
    generate does: quality.nearest within each service's pages (its family) and within
    each location's (its place), title and description keys counted per service."""
    pages = [(service, place) for service in services for place in locations]
    keys = [(service.id, place.id) for service, place in pages]
    signals: list[quality.Signals] = []
    blocks: list[quality.Signature] = []
    for at in range(0, len(pages), RENDER_BATCH):
        batch, signed = builder.render_batch(pages[at : at + RENDER_BATCH], LengthReport())
        signals.extend(one.signals for one in batch)
        if signed is not None:
            blocks.append(signed)
    nothing: Near = (None, 0)
    in_family = dict.fromkeys(keys, nothing)
    in_place = dict.fromkeys(keys, nothing)
    if builder.scored and pages:
        matrix = np.concatenate(blocks)
        services_of = np.array([key[0] for key in keys], dtype=np.int64)
        locations_of = np.array([key[1] for key in keys], dtype=np.int64)
        rows, equal = quality.nearest(matrix, services_of)
        for key, row, count in zip(keys, rows.tolist(), equal.tolist(), strict=True):
            if row >= 0:
                in_family[key] = (int(locations_of[row]), count)
        rows, equal = quality.nearest(matrix, locations_of)
        for key, row, count in zip(keys, rows.tolist(), equal.tolist(), strict=True):
            if row >= 0:
                in_place[key] = (int(services_of[row]), count)
    titles = Counter((key[0], one.title_key) for key, one in zip(keys, signals, strict=True))
    descriptions = Counter(
        (key[0], one.description_key) for key, one in zip(keys, signals, strict=True)
    )
    return _Comparison(
        in_family,
        in_place,
        {key: titles[key[0], one.title_key] for key, one in zip(keys, signals, strict=True)},
        {
            key: descriptions[key[0], one.description_key]
            for key, one in zip(keys, signals, strict=True)
        },
    )


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
    grid = _compared(builder, services, locations)
    rows = []
    for service in services:
        for location in locations:
            key = (service.id, location.id)
            rows.append(
                builder.judged_row(
                    service,
                    location,
                    builder.render(service, location, LengthReport()),
                    grid.in_family[key],
                    grid.in_place[key],
                    grid.same_titles[key],
                    grid.same_descriptions[key],
                ).row
            )
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
