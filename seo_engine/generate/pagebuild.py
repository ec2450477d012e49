"""Turn one service and one location into a page: its text, what the quality gate reads in
it, its document and row, and the digest of everything it is built from."""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import numpy as np
import numpy.typing as npt
import orjson

from seo_engine.generate import copyrows, documents, quality
from seo_engine.generate.quality import DESCRIPTION_LIMIT, TITLE_LIMIT
from seo_engine.generate.visibility import ALL_LIVE, Visibility
from seo_engine.ingest.content import SEPARATOR, ContentTemplates, PageText, time_limit
from seo_engine.ingest.neighbours import Point, distance_km
from seo_engine.ingest.overrides import Applied, Fields, Overrides
from seo_engine.ingest.sites import Site

SIBLING_LINKS = 6
PAGE_TIME_LIMIT_SECONDS = 2.0
EXAMPLES_KEPT = 5
PACKAGE = Path(__file__).resolve().parent.parent


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
    document: bytes  # as stored and served (also inside `row`)


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


class Sibling(NamedTuple):
    """The nearest page the quality gate found for a page, and their similarity."""

    service: Dimension
    location: Dimension
    similarity: float


# The nearest page found in a family (its location id) or a place (its service id), and how
# many signature values they share; (None, 0) when none was found.
Near = tuple[int | None, int]


class Rendered(NamedTuple):
    """One page's text and what the quality gate reads in it."""

    texts: list[str]  # every block's text, in the content templates' order
    signals: quality.Signals


@functools.cache
def code_digest() -> bytes:
    """The package's own source (Python and SQL): another release may build other pages."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in (".py", ".sql") and path.is_file():
            digest.update(path.relative_to(PACKAGE).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.digest()


def _digest(*parts: Any) -> bytes:
    canonical = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).digest()


class Neighbours:
    """Each location's nearest places, closest first: all ids and distances in two arrays,
    each location's run of them by its span (as Python objects, the 8 neighbours of 34,000
    locations took a worker ~35 MB)."""

    def __init__(
        self, locations: npt.NDArray[np.int64], ids: npt.NDArray[np.int64], km: npt.NDArray[Any]
    ) -> None:
        """`locations`, `ids` and `km` side by side, sorted by location and rank."""
        self.owners = locations.astype(np.int64)  # the location each neighbour is near
        self.ids = ids.astype(np.int64)
        self.km = km.astype(np.float64)
        starts = np.flatnonzero(np.r_[True, locations[1:] != locations[:-1]])[: len(locations)]
        ends = np.r_[starts[1:], len(locations)][: len(starts)]
        self.spans = dict(
            zip(
                locations[starts].tolist(),
                zip(starts.tolist(), ends.tolist(), strict=True),
                strict=True,
            )
        )

    def of(self, location_id: int) -> list[tuple[int, float]]:
        start, end = self.spans.get(location_id, (0, 0))
        return list(zip(self.ids[start:end].tolist(), self.km[start:end].tolist(), strict=True))


class PageBuilder:
    """Everything needed to render the pages of one site, loaded once per worker."""

    def __init__(
        self,
        site: Site,
        services: list[Dimension],
        locations: list[Dimension],
        neighbours: Neighbours,
        changed_at: datetime,
        overrides: Overrides | None = None,
        visibility: Visibility = ALL_LIVE,
    ) -> None:
        self.site = site
        self.visibility = visibility  # which pages are live: the only ones linked to
        self.changed_at = changed_at  # updated_at of every page this run changes
        self.templates = ContentTemplates(site.content)
        self.overrides = overrides or Overrides()
        self.fields = Fields(self.templates)
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
        self.scored = site.quality.gate
        self.reader = quality.WordReader(self.templates.literal_text)
        # (masked, data) words, made at a service's or location's first page: a worker
        # meets every location once per service (about 17 MB at 34,000 locations).
        self._service_words: dict[int, tuple[quality.Hashes, quality.Hashes]] = {}
        self._location_words: dict[int, tuple[quality.Hashes, quality.Hashes]] = {}
        self._service_inputs: dict[int, bytes] = {}
        self._location_inputs: dict[int, bytes] = {}
        add_region_facts(locations)

    def path(self, service: Dimension, location: Dimension) -> str:
        return self.site.page_path(service.slug, location.slug)

    def _close(self, location: Dimension) -> list[tuple[Dimension, float]]:
        return [
            (self.location_by_id[other], km)
            for other, km in self.neighbours.of(location.id)
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

    def inputs(self, service: Dimension, location: Dimension) -> bytes:
        """The digest of everything the page's text and document are built from: the code,
        the site (name, base URL, path pattern, templates, generate and quality settings),
        the service and the services its page links to, the location with its region's
        facts, and its neighbours (their facts within the nearby radius, else their names)."""
        own = self._service_inputs.get(service.id)
        if own is None:
            site = self.site
            own = self._service_inputs[service.id] = _digest(
                code_digest().hex(),
                [site.slug, site.name, site.base_url, site.locale, site.path_pattern],
                site.content,
                service.context,
                [sibling.context for sibling in self.siblings[service.id]],
            )
        place = self._location_inputs.get(location.id)
        if place is None:
            # Templates see the places within the radius whole; the page links to the others
            # by slug and name.
            radius = self.site.options.nearby_radius_km
            close = [
                [n.context if km <= radius else [n.slug, n.context["name"]], km]
                for n, km in self._close(location)
            ]
            place = self._location_inputs[location.id] = _digest(location.context, close)
        chosen = self.overrides.for_page(service.id, location.id)
        if chosen:  # its hand edits
            place += _digest(chosen)
        return hashlib.blake2b(own + place, digest_size=16).digest()

    def applied(self, service: Dimension, location: Dimension) -> Applied | None:
        """What the page's overrides change, or None when it has none."""
        chosen = self.overrides.for_page(service.id, location.id)
        return Applied.of(chosen, self.fields) if chosen else None

    def render(self, service: Dimension, location: Dimension, lengths: LengthReport) -> Rendered:
        """One page's blocks and what the quality gate reads in them (see `render_batch`)."""
        return self.render_batch([(service, location)], lengths)[0][0]

    def render_batch(
        self, pages: Sequence[tuple[Dimension, Dimension]], lengths: LengthReport
    ) -> tuple[list[Rendered], quality.Signature | None]:
        """Render pages, and read them for the quality gate all at once: each page's blocks
        and signals, and with the site's gate on a signature per page."""
        texts_of: list[list[str]] = []
        masked: list[tuple[quality.Hashes, ...]] = []
        data: list[tuple[quality.Hashes, ...]] = []
        for service, location in pages:
            context = self._context(service, location, self._close(location))
            applied = self.applied(service, location)
            texts_of.append(self._texts(service, location, context, applied, lengths))
            if self.scored:
                own, place = self._words_of(service, location, context["nearby"])
                masked.append((own[0], place[0]))
                data.append((own[1], place[1], *self._edited_words(applied)))
        counts = found = [0] * len(pages)
        signatures = None
        if self.scored:
            # The separator cuts words like punctuation.
            words = self.reader.read([SEPARATOR.join(texts) for texts in texts_of], masked, data)
            counts, found = words.counts.tolist(), words.data.tolist()
            signatures = quality.signatures(words)
        rendered = []
        for texts, count, data_words in zip(texts_of, counts, found, strict=True):
            text, local = self.page_text(texts)
            body = [text.intro, *local, *(b for _, b in text.sections), *(a for _, a in text.faq)]
            signals = quality.Signals(
                body_words=len(" ".join(body).split()),
                data_words=data_words,
                words=count,
                title_length=len(text.title),
                description_length=len(text.meta_description),
                empty_sections=sum(1 for _, b in text.sections if not b.strip()),
                title_key=quality.text_key(text.title),
                description_key=quality.text_key(text.meta_description),
            )
            rendered.append(Rendered(texts, signals))
        return rendered, signatures

    def page_text(self, texts: list[str]) -> tuple[PageText, list[str]]:
        """A page's fields from its texts (`_texts`), and its local paragraph if it has one
        (an override: the text after the templates' blocks)."""
        blocks = len(self.templates.blocks)
        return self.templates.page_text(texts[:blocks]), texts[blocks:]

    def template_texts(
        self, service: Dimension, location: Dimension, context: dict[str, Any] | None = None
    ) -> list[str]:
        """What the templates write for a page, before its overrides: every block's text; a
        title or description over its limit tries the block's other variants."""
        if context is None:
            context = self._context(service, location, self._close(location))
        seed = zlib.crc32(f"{service.key}\x1f{location.key}".encode())
        with time_limit(PAGE_TIME_LIMIT_SECONDS):
            texts, chosen = self.templates.render(context, seed)
            if len(texts[0]) > TITLE_LIMIT:
                texts[0] = self.templates.fit(0, texts, chosen, TITLE_LIMIT, context)
            if len(texts[1]) > DESCRIPTION_LIMIT:
                texts[1] = self.templates.fit(1, texts, chosen, DESCRIPTION_LIMIT, context)
        return texts

    def _texts(
        self,
        service: Dimension,
        location: Dimension,
        context: dict[str, Any],
        applied: Applied | None,
        lengths: LengthReport,
    ) -> list[str]:
        """One page's texts: the templates' blocks with its overrides in place, then its
        local paragraph if it has one."""
        path = self.path(service, location)
        texts = self.template_texts(service, location, context)
        if applied is not None:
            for index, value in applied.blocks.items():
                texts[index] = value
            if applied.local_paragraph is not None:
                texts.append(applied.local_paragraph)
        if len(texts[0]) > TITLE_LIMIT:
            lengths.long_titles += 1
            lengths.note(path, "title", len(texts[0]))
        if len(texts[1]) > DESCRIPTION_LIMIT:
            lengths.long_descriptions += 1
            lengths.note(path, "meta description", len(texts[1]))
        return texts

    def _edited_words(self, applied: Applied | None) -> list[quality.Hashes]:
        """The words written by hand for a page: its own data, like its rows' values."""
        if applied is None:
            return []
        values = [*applied.blocks.values(), applied.local_paragraph or ""]
        return [self.reader.values(values)]

    def _words_of(
        self, service: Dimension, location: Dimension, nearby: list[dict[str, Any]]
    ) -> tuple[tuple[quality.Hashes, quality.Hashes], tuple[quality.Hashes, quality.Hashes]]:
        """The (masked, data) words of a page's service and of its location."""
        values = self.reader.values
        own = self._service_words.get(service.id)
        if own is None:
            own = self._service_words[service.id] = (
                values([service.context["name"]]),
                values(service_values(service.context)),
            )
        place = self._location_words.get(location.id)
        if place is None:
            place = self._location_words[location.id] = (
                values(location_entities(location.context)),
                values(location_values(location.context, nearby)),
            )
        return own, place

    def document(
        self,
        service: Dimension,
        location: Dimension,
        texts: list[str],
        verdict: quality.Verdict,
        nearest: Sibling | None,
    ) -> tuple[bytes, bytes]:
        """A judged page's document, as stored and served, and its content hash."""
        text, local = self.page_text(texts)
        links = self.links(service, location)
        fields = {
            "title": text.title,
            "meta_description": text.meta_description,
            "h1": text.h1,
            "intro": text.intro,
            "sections": [{"heading": h, "body": b} for h, b in text.sections],
            "faq": [{"question": q, "answer": a} for q, a in text.faq],
        }
        applied = self.applied(service, location)
        if local:
            fields["local_paragraph"] = local[0]
        if applied is not None and applied.fields:
            fields["overridden"] = applied.fields
        near_path = None if nearest is None else self.path(nearest.service, nearest.location)
        similarity = None if nearest is None else nearest.similarity
        return documents.build(
            self.site,
            self.path(service, location),
            service.context,
            location.context,
            fields,
            links,
            verdict.summary(near_path, similarity),
            self.changed_at,
        )

    def links(self, service: Dimension, location: Dimension) -> dict[str, Any]:
        """A page's internal links: the same service in the places nearest to it, and the
        other services of its category in its place; only to pages that are live."""
        live = self.visibility.live
        return {
            "nearby": [
                {"path": self.path(service, n), "name": n.context["name"], "distance_km": round(km)}
                for n, km in self._close(location)
                if live(service.id, n.id)
            ],
            "services": [
                {"path": self.path(s, location), "name": s.context["name"]}
                for s in self.siblings[service.id]
                if live(s.id, location.id)
            ],
        }

    def linked_from(self, pages: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
        """The (service id, location id) of every page whose links may include one of
        `pages`: the reverse of `links`."""
        wanted = set(pages)
        by_location: dict[int, list[int]] = {}
        for service_id, location_id in wanted:
            by_location.setdefault(location_id, []).append(service_id)
        found: set[tuple[int, int]] = set()
        near = self.neighbours
        places = np.fromiter(by_location, np.int64, len(by_location))
        for at in np.flatnonzero(np.isin(near.ids, places)).tolist():
            source = int(near.owners[at])
            found.update((service_id, source) for service_id in by_location[int(near.ids[at])])
        listed_by: dict[int, list[int]] = {}
        for service_id, siblings in self.siblings.items():
            for sibling in siblings:
                listed_by.setdefault(sibling.id, []).append(service_id)
        for service_id, location_id in wanted:
            found.update((other, location_id) for other in listed_by.get(service_id, ()))
        return {(s, location) for s, location in found if location in self.location_by_id}

    def nearest(
        self,
        service: Dimension,
        location: Dimension,
        in_family: Near,
        in_place: Near,
    ) -> Sibling | None:
        """The nearer of a page's nearest in its family (a location id) and in its place (a
        service id), the family's on a tie; None when neither was found."""
        if in_place[0] is not None and in_place[1] > in_family[1]:
            other = self.services[in_place[0]]
            return Sibling(other, location, in_place[1] / quality.PERMUTATIONS)
        if in_family[0] is not None:
            near = self.location_by_id[in_family[0]]
            return Sibling(service, near, in_family[1] / quality.PERMUTATIONS)
        return None

    def judged_row(
        self,
        service: Dimension,
        location: Dimension,
        rendered: Rendered,
        in_family: Near,
        in_place: Near,
        same_titles: int,
        same_descriptions: int,
    ) -> RenderedPage:
        """A rendered page judged by the quality gate against its nearest siblings (see
        `nearest`) and the pages of its family sharing its title and description keys, as
        a row ready to COPY. With the site's gate off every page is `quality.UNSCORED`."""
        nearest = self.nearest(service, location, in_family, in_place)
        verdict = quality.UNSCORED
        if self.scored:
            verdict = quality.judge(
                rendered.signals,
                None if nearest is None else nearest.similarity,
                None if nearest is None else self.path(nearest.service, nearest.location),
                same_titles,
                same_descriptions,
                self.site.quality,
            )
        applied = self.applied(service, location)
        if applied is not None and applied.noindex:
            verdict = quality.noindexed(verdict)
        return self.row(service, location, rendered.texts, verdict, nearest)

    def row(
        self,
        service: Dimension,
        location: Dimension,
        texts: list[str],
        verdict: quality.Verdict,
        nearest: Sibling | None,
    ) -> RenderedPage:
        """A judged page's row, ready to COPY into `pages` (or the stage)."""
        document, digest = self.document(service, location, texts, verdict, nearest)
        columns = (
            self.path(service, location).encode(),
            texts[0].encode(),
            texts[1].encode(),
            texts[2].encode(),
            document,
        )
        row = copyrows.encode(
            self.site.id,
            service.id,
            location.id,
            columns,
            copyrows.Quality(
                verdict.score,
                verdict.indexable,
                verdict.flags,
                None if nearest is None else nearest.similarity,
                None if nearest is None else nearest.location.id,
                None if nearest is None else nearest.service.id,
            ),
            digest,
        )
        return RenderedPage(location.id, digest, row, document)


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
