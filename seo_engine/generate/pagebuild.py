"""Turn one service and one location into a finished page row (text, links, score, hash)."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import numpy as np
import orjson

from seo_engine.generate import copyrows, documents, quality
from seo_engine.generate.quality import DESCRIPTION_LIMIT, TITLE_LIMIT
from seo_engine.ingest.content import SEPARATOR, ContentTemplates, PageText, time_limit
from seo_engine.ingest.neighbours import Point, distance_km
from seo_engine.ingest.sites import Site

SIBLING_LINKS = 6
PAGE_TIME_LIMIT_SECONDS = 2.0
EXAMPLES_KEPT = 5
SIGNATURE_BATCH = 512  # pages whose signatures are computed at once


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


class JudgedPage(NamedTuple):
    """One page rendered and judged by the quality gate, before its document is built."""

    service: Dimension
    location: Dimension
    text: PageText
    verdict: quality.Verdict
    similarity: float | None  # to its nearest sibling, if one was found
    near: Dimension | None  # that sibling's location


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


# Location facts that count as the page's own data when they appear in its text.
LOCATION_DATA = (
    "name",
    "region_name",
    "area",
    "population_text",
    "timezone",
    "region_rank_text",
    "region_cities",
    "region_population_text",
)


def _ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


def add_region_facts(locations: list[Dimension]) -> None:
    """Give each location's context what its region says of it: its rank by population,
    the region's number of cities and population, and the distance to the region's
    largest city (its hub). Only locations that get pages count."""
    regions: dict[tuple[str, str], list[Dimension]] = {}
    for location in locations:
        context = location.context
        context.update(region_rank=0, region_rank_text="", region_cities=0)
        context.update(region_population_text="", hub=None)
        if context["region_code"]:
            key = (context["country_code"], context["region_code"])
            regions.setdefault(key, []).append(location)
    for members in regions.values():
        members.sort(key=lambda member: (-member.context["population"], member.key))
        hub = members[0].context
        total = f"{sum(member.context['population'] for member in members):,}"
        hub_point = Point(0, hub["latitude"], hub["longitude"])
        for rank, member in enumerate(members, 1):
            context = member.context
            context["region_rank"] = rank
            context["region_rank_text"] = "largest" if rank == 1 else f"{_ordinal(rank)} largest"
            context["region_cities"] = len(members)
            context["region_population_text"] = total
            if rank > 1:
                point = Point(0, context["latitude"], context["longitude"])
                context["hub"] = {
                    "name": hub["name"],
                    "distance_km": round(distance_km(point, hub_point)),
                }


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
        self.vocabulary = quality.Vocabulary(self.templates.literal_text)
        # (masked, data) words of each service and location (quality.Vocabulary.words),
        # made at their first page: a worker meets every location once per service.
        self._words: dict[tuple[str, int], tuple[tuple[bytes, ...], tuple[bytes, ...]]] = {}
        add_region_facts(locations)

    def path(self, service: Dimension, location: Dimension) -> str:
        return self.site.page_path(service.slug, location.slug)

    def _close(self, location: Dimension) -> list[tuple[Dimension, float]]:
        return [
            (self.location_by_id[other], km)
            for other, km in self.neighbours.get(location.id, ())
            if other in self.location_by_id
        ]

    def _context(self, service: Dimension, location: Dimension, close: list[Any]) -> dict[str, Any]:
        radius = self.site.options.nearby_radius_km
        return {
            "site": self.site_context,
            "service": service.context,
            "location": location.context,
            "nearby": [
                {**neighbour.context, "distance_km": round(km)}
                for neighbour, km in close
                if km <= radius
            ],
            "siblings": [s.context for s in self.siblings[service.id]],
        }

    def render(
        self, service: Dimension, location: Dimension, lengths: LengthReport
    ) -> tuple[str, quality.Signals, quality.Words]:
        """One page's rendered blocks (joined by SEPARATOR), what the quality gate reads in
        them, and its words (see `quality.Vocabulary.read`)."""
        context = self._context(service, location, self._close(location))
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
        body = [text.intro, *(b for _, b in text.sections), *(a for _, a in text.faq)]
        masked, data = self._words_of(service, location, context)
        whole = SEPARATOR.join(texts)  # the separator cuts words like punctuation
        words = self.vocabulary.read(whole, masked, data)
        signals = quality.Signals(
            body_words=sum(len(part.split()) for part in body),
            data_words=words.data,
            words=words.count,
            title_length=len(text.title),
            description_length=len(text.meta_description),
            empty_sections=sum(1 for _, b in text.sections if not b.strip()),
            title_key=quality.normalised(text.title),
            description_key=quality.normalised(text.meta_description),
        )
        return whole, signals, words

    def _words_of(
        self, service: Dimension, location: Dimension, context: dict[str, Any]
    ) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """The words a page of this service in this location masks, and its data words."""
        words = self.vocabulary.words
        own = self._words.get(("service", service.id))
        if own is None:
            own = self._words[("service", service.id)] = (
                words([service.context["name"]]),
                words(service_values(service.context)),
            )
        place = self._words.get(("location", location.id))
        if place is None:
            place = self._words[("location", location.id)] = (
                words(location_entities(location.context)),
                words(location_values(location.context, context["nearby"])),
            )
        return own[0] + place[0], own[1] + place[1]

    def family(
        self, service_id: int, lengths: LengthReport, locations: list[Dimension] | None = None
    ) -> Iterator[JudgedPage]:
        """Every page of one service (or its pages in these locations: a preview's sample),
        in location order, rendered and judged.

        The pages of a service are one family for the quality gate: all of them are
        rendered (their text kept as UTF-8) and compared before any is judged.
        """
        service = self.services[service_id]
        members = self.locations if locations is None else locations
        kept: list[bytes] = []
        signals: list[quality.Signals] = []
        signatures = np.empty((len(members), quality.PERMUTATIONS), dtype=np.uint32)
        batch: list[quality.Words] = []
        for location in members:
            whole, signal, words = self.render(service, location, lengths)
            kept.append(whole.encode())
            signals.append(signal)
            batch.append(words)
            if len(batch) == SIGNATURE_BATCH or len(kept) == len(members):
                signatures[len(kept) - len(batch) : len(kept)] = quality.signatures(batch)
                batch.clear()
        nearest = quality.nearest_siblings(signatures)
        titles = Counter(signal.title_key for signal in signals)
        descriptions = Counter(signal.description_key for signal in signals)
        rules = self.site.quality
        for index, location in enumerate(members):
            found = nearest[index]
            near = members[found.index] if found is not None else None
            near_path = self.path(service, near) if near is not None else None
            verdict = quality.judge(signals[index], found, near_path, titles, descriptions, rules)
            text = self.templates.page_text(kept[index].decode().split(SEPARATOR))
            similarity = found.similarity if found is not None else None
            yield JudgedPage(service, location, text, verdict, similarity, near)

    def pages(
        self, service_id: int, lengths: LengthReport, locations: list[Dimension] | None = None
    ) -> Iterator[RenderedPage]:
        """Every page row of one service (see `family`), in location order, ready to COPY."""
        for page in self.family(service_id, lengths, locations):
            document, digest = self.document(page)
            columns = (
                self.path(page.service, page.location).encode(),
                page.text.title.encode(),
                page.text.meta_description.encode(),
                page.text.h1.encode(),
                document,
            )
            near = page.near
            row = copyrows.encode(
                self.site.id,
                page.service.id,
                page.location.id,
                columns,
                copyrows.Quality(
                    page.verdict.score,
                    page.verdict.indexable,
                    page.verdict.flags,
                    page.similarity,
                    near.id if near is not None else None,
                ),
                digest,
            )
            yield RenderedPage(page.location.id, digest, row)

    def document(self, page: JudgedPage) -> tuple[bytes, bytes]:
        """A judged page's document, as stored and served, and its content hash."""
        service, location, text = page.service, page.location, page.text
        close = self._close(location)
        links = {
            "nearby": [
                {"path": self.path(service, n), "name": n.context["name"], "distance_km": round(km)}
                for n, km in close
            ],
            "services": [
                {"path": self.path(s, location), "name": s.context["name"]}
                for s in self.siblings[service.id]
            ],
        }
        fields = {
            "title": text.title,
            "meta_description": text.meta_description,
            "h1": text.h1,
            "intro": text.intro,
            "sections": [{"heading": h, "body": b} for h, b in text.sections],
            "faq": [{"question": q, "answer": a} for q, a in text.faq],
        }
        near_path = self.path(service, page.near) if page.near is not None else None
        return documents.build(
            self.site,
            self.path(service, location),
            service.context,
            location.context,
            fields,
            links,
            page.verdict.summary(near_path, page.similarity),
            self.changed_at,
        )


def location_entities(location: dict[str, Any]) -> tuple[str, ...]:
    """A location's own names and numbers: masked before pages are compared, since two
    pages that differ only in these say the same thing."""
    return (
        location["name"],
        location["region_name"],
        location["area"],
        location["population_text"],
    )


def service_values(service: dict[str, Any]) -> list[str]:
    """Every value a service row puts into its pages' text (for their unique-data share)."""
    values = [service["name"], service["category"], service["description"]]
    return values + [str(v) for v in service["attributes"].values()]


def location_values(location: dict[str, Any], nearby: list[dict[str, Any]]) -> list[str]:
    """Every value a location's rows (its own, its region's, the places near it) put into
    the text of its pages."""
    values = [str(location[key]) for key in LOCATION_DATA if location.get(key) is not None]
    values += [str(v) for v in location["attributes"].values()]
    hub = location.get("hub")
    if hub:
        values += [hub["name"], str(hub["distance_km"])]
    for place in nearby:
        values += [place["name"], str(place["distance_km"])]
    return values
