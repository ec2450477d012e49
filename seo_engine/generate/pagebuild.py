"""Turn one service and one location into a finished page row (text, links, score, hash)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import orjson

from seo_engine.generate import copyrows, documents
from seo_engine.ingest.content import ContentTemplates, time_limit
from seo_engine.ingest.sites import Site

TITLE_LIMIT = 60
DESCRIPTION_LIMIT = 160
SIBLING_LINKS = 6
PAGE_TIME_LIMIT_SECONDS = 2.0
EXAMPLES_KEPT = 5


@dataclass(frozen=True)
class Dimension:
    """A service or a location as content templates see it."""

    id: int
    key: str
    slug: str
    context: dict[str, Any]


class RenderedPage(NamedTuple):
    """One page of a service, ready to COPY (`row` is in `copyrows.COLUMNS` order)."""

    location_id: int
    content_hash: bytes
    row: bytes


@dataclass
class LengthReport:
    """Pages whose title or description stayed over the limit with every variant."""

    long_titles: int = 0
    long_descriptions: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, path: str, what: str, length: int) -> None:
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(f"{path}: {what} is {length} characters")

    def add(self, other: LengthReport) -> None:
        self.long_titles += other.long_titles
        self.long_descriptions += other.long_descriptions
        room = EXAMPLES_KEPT - len(self.examples)
        self.examples.extend(other.examples[:room])


def location_context(row: asyncpg.Record) -> dict[str, Any]:
    """What templates may use of a location row."""
    us_state = row["country_code"] == "US" and row["region_code"]
    return {
        "key": row["key"],
        "slug": row["slug"],
        "name": row["name"],
        "region_name": row["region_name"],
        "region_code": row["region_code"],
        "country_code": row["country_code"],
        "area": row["region_code"] if us_state else (row["region_name"] or row["country_code"]),
        "population": row["population"],
        "population_text": f"{row['population']:,}",
        "latitude": row["latitude"],
        "longitude": row["longitude"],
        "timezone": row["timezone"],
        "attributes": orjson.loads(row["attributes"]),
    }


def service_context(row: asyncpg.Record) -> dict[str, Any]:
    """What templates may use of a service row."""
    return {
        "key": row["key"],
        "slug": row["slug"],
        "name": row["name"],
        "category": row["category"],
        "description": row["description"],
        "attributes": orjson.loads(row["attributes"]),
    }


def _words(*texts: str) -> int:
    return sum(text.count(" ") + 1 for text in texts if text)


class PageBuilder:
    """Everything needed to render the pages of one site, loaded once per worker."""

    def __init__(
        self,
        site: Site,
        services: list[Dimension],
        locations: list[Dimension],
        neighbours: dict[int, list[tuple[int, float]]],
        changed_at: datetime,
    ) -> None:
        self.site = site
        self.changed_at = changed_at  # updated_at of every page this run changes
        self.templates = ContentTemplates(site.content)
        self.services = {service.id: service for service in services}
        self.locations = locations
        self.neighbours = neighbours
        self.site_context = {
            "slug": site.slug,
            "name": site.name,
            "base_url": site.base_url,
            "locale": site.locale,
        }
        by_category: dict[str, list[Dimension]] = {}
        for service in sorted(services, key=lambda s: s.slug):
            by_category.setdefault(service.context["category"], []).append(service)
        self.siblings = {
            service.id: [s for s in by_category[service.context["category"]] if s.id != service.id][
                :SIBLING_LINKS
            ]
            for service in services
        }
        self.location_by_id = {location.id: location for location in locations}

    def path(self, service: Dimension, location: Dimension) -> str:
        return self.site.page_path(service.slug, location.slug)

    def pages(self, service_id: int, lengths: LengthReport) -> Iterator[RenderedPage]:
        """Every page row of one service, in location order."""
        service = self.services[service_id]
        siblings = self.siblings[service_id]
        sibling_context = [s.context for s in siblings]
        radius = self.site.options.nearby_radius_km
        for location in self.locations:
            close = [
                (self.location_by_id[other], km)
                for other, km in self.neighbours.get(location.id, ())
                if other in self.location_by_id
            ]
            nearby = [
                {**neighbour.context, "distance_km": round(km)}
                for neighbour, km in close
                if km <= radius
            ]
            context = {
                "site": self.site_context,
                "service": service.context,
                "location": location.context,
                "nearby": nearby,
                "siblings": sibling_context,
            }
            path = self.path(service, location)
            seed = zlib.crc32(f"{service.key}\x1f{location.key}".encode())
            with time_limit(PAGE_TIME_LIMIT_SECONDS):
                texts, chosen = self.templates.render(context, seed)
                if len(texts[0]) > TITLE_LIMIT:
                    texts[0] = self.templates.fit(0, texts, chosen, TITLE_LIMIT, context)
                if len(texts[1]) > DESCRIPTION_LIMIT:
                    texts[1] = self.templates.fit(1, texts, chosen, DESCRIPTION_LIMIT, context)
            if len(texts[0]) > TITLE_LIMIT:
                lengths.long_titles += 1
                lengths.note(path, "title", len(texts[0]))
            if len(texts[1]) > DESCRIPTION_LIMIT:
                lengths.long_descriptions += 1
                lengths.note(path, "meta description", len(texts[1]))
            text = self.templates.page_text(texts)
            links = {
                "nearby": [
                    {
                        "path": self.path(service, n),
                        "name": n.context["name"],
                        "distance_km": round(km),
                    }
                    for n, km in close
                ],
                "services": [
                    {"path": self.path(s, location), "name": s.context["name"]} for s in siblings
                ],
            }
            body_words = _words(
                text.intro, *(b for _, b in text.sections), *(a for _, a in text.faq)
            )
            score = round(
                0.4 * min(1.0, body_words / 300)
                + (0.15 if len(text.title) <= TITLE_LIMIT else 0.0)
                + (0.15 if 70 <= len(text.meta_description) <= DESCRIPTION_LIMIT else 0.0)
                + 0.15 * min(1.0, len(close) / 8)
                + (0.15 if location.context["region_name"] else 0.0),
                3,
            )
            indexable = score >= self.site.options.index_threshold
            fields = {
                "title": text.title,
                "meta_description": text.meta_description,
                "h1": text.h1,
                "intro": text.intro,
                "sections": [{"heading": h, "body": b} for h, b in text.sections],
                "faq": [{"question": q, "answer": a} for q, a in text.faq],
            }
            document, digest = documents.build(
                self.site,
                path,
                service.context,
                location.context,
                fields,
                links,
                indexable,
                score,
                self.changed_at,
            )
            columns = (
                path.encode(),
                text.title.encode(),
                text.meta_description.encode(),
                text.h1.encode(),
                document,
            )
            row = copyrows.encode(
                self.site.id, service.id, location.id, columns, score, indexable, digest
            )
            yield RenderedPage(location.id, digest, row)
