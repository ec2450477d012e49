"""`seo-engine audit`: what the quality gate decided about a site's live pages, read back
from the stored verdicts (generate/quality.py writes them), for a person or a machine."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

from seo_engine.db.database import Connection
from seo_engine.generate.quality import DESCRIPTION_LIMIT, REASONS, TITLE_LIMIT
from seo_engine.ingest.sites import Site

SCHEMA_VERSION = 1  # of --json's output; docs/quality.md describes it
BUCKETS = 10  # score histogram: 0-9, 10-19, ... 90-100

# One scan of the site's live pages, grouped by score bucket, reasons and verdict: few
# groups, from which the totals, the histogram and the reason counts all follow.
VERDICT_GROUPS = """
SELECT least(floor(quality_score / 10), 9)::int AS bucket, quality_flags, indexable,
       least(floor(nearest_similarity * 10), 9)::int AS similarity_bucket,
       count(*)::bigint AS pages
FROM pages WHERE site_id = $1 AND deleted_at IS NULL
GROUP BY 1, 2, 3, 4
"""
FAMILIES = """
SELECT s.slug AS service, count(*)::bigint AS pages,
       count(*) FILTER (WHERE p.indexable)::bigint AS passing,
       avg(p.quality_score)::float8 AS mean_score
FROM pages p JOIN services s ON s.id = p.service_id
WHERE p.site_id = $1 AND p.deleted_at IS NULL
GROUP BY s.slug
ORDER BY count(*) FILTER (WHERE p.indexable)::float8 / count(*), s.slug
"""
REGIONS = """
SELECT l.country_code, l.region_name, count(*)::bigint AS pages,
       count(*) FILTER (WHERE p.indexable)::bigint AS passing
FROM pages p JOIN locations l ON l.id = p.location_id
WHERE p.site_id = $1 AND p.deleted_at IS NULL
GROUP BY l.country_code, l.region_name
ORDER BY count(*) FILTER (WHERE p.indexable)::float8 / count(*), count(*) DESC,
         l.country_code, l.region_name
LIMIT $2
"""
WORST_PAGES = """
SELECT path, quality_score::float8 AS score, document
FROM pages WHERE site_id = $1 AND deleted_at IS NULL
ORDER BY quality_score, path
LIMIT $2
"""
# Both pages of a pair usually name each other: fetch twice the rows, keep each pair once.
NEAREST_PAIRS = """
SELECT p.path, n.path AS nearest_path, p.nearest_similarity::float8 AS similarity
FROM pages p
JOIN pages n ON n.site_id = p.site_id
            AND n.service_id = coalesce(p.nearest_service_id, p.service_id)
            AND n.location_id = p.nearest_location_id
WHERE p.site_id = $1 AND p.deleted_at IS NULL AND p.nearest_similarity IS NOT NULL
ORDER BY p.nearest_similarity DESC, p.path
LIMIT $2 * 2
"""
DUPLICATE_FIELD = """
SELECT {field} AS text, count(*)::bigint AS pages, (array_agg(path ORDER BY path))[1:3] AS paths,
       count(*) OVER ()::bigint AS groups
FROM pages WHERE site_id = $1 AND deleted_at IS NULL
GROUP BY {field} HAVING count(*) > 1
ORDER BY count(*) DESC, {field}
LIMIT $2
"""
OVER_LIMITS = """
SELECT path, length(title) AS title_length, length(meta_description) AS description_length,
       count(*) OVER ()::bigint AS pages
FROM pages
WHERE site_id = $1 AND deleted_at IS NULL
  AND (length(title) > $2 OR length(meta_description) > $3)
ORDER BY greatest(length(title) - $2, length(meta_description) - $3) DESC, path
LIMIT $4
"""
# Internal links, read from the stored documents (every list under "links" holds objects
# with a "path"): one row per link, kept for the transaction.
LINKS_TABLE = "CREATE TEMP TABLE audit_links (source text, target text) ON COMMIT DROP"
LINKS_FILL = """
INSERT INTO audit_links
SELECT p.path, link #>> '{}'
FROM pages p,
     jsonb_path_query(convert_from(p.document, 'UTF8')::jsonb, '$.links.*[*].path') link
WHERE p.site_id = $1 AND p.deleted_at IS NULL
"""
DANGLING = """
SELECT target, count(*)::bigint AS links, min(source) AS example,
       count(*) OVER ()::bigint AS targets, (sum(count(*)) OVER ())::bigint AS total
FROM audit_links l
WHERE NOT EXISTS (SELECT 1 FROM pages q
                  WHERE q.site_id = $1 AND q.path = l.target AND q.deleted_at IS NULL)
GROUP BY target
ORDER BY count(*) DESC, target
LIMIT $2
"""
ORPHANS = """
SELECT path, count(*) OVER ()::bigint AS orphans
FROM pages p
WHERE site_id = $1 AND deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM audit_links l WHERE l.target = p.path AND l.source <> p.path)
ORDER BY path
LIMIT $2
"""
DUPLICATE_TITLES = DUPLICATE_FIELD.format(field="title")
DUPLICATE_DESCRIPTIONS = DUPLICATE_FIELD.format(field="meta_description")


@dataclass(frozen=True)
class Family:
    service: str
    pages: int
    passing: int
    mean_score: float


@dataclass(frozen=True)
class Region:
    country_code: str
    region_name: str
    pages: int
    passing: int


@dataclass(frozen=True)
class WorstPage:
    path: str
    score: float
    reasons: list[dict[str, str]]


@dataclass(frozen=True)
class NearPair:
    path: str
    nearest_path: str
    similarity: float


@dataclass(frozen=True)
class Duplicate:
    text: str
    pages: int
    paths: list[str]  # the first three, in path order


@dataclass(frozen=True)
class OverLimit:
    path: str
    title_length: int
    description_length: int


@dataclass(frozen=True)
class DanglingLink:
    target: str  # a path no live page has
    links: int  # how many pages link to it
    example: str  # one of them


@dataclass(frozen=True)
class Links:
    """Internal links between pages (nearby places, other services), from the documents."""

    links: int
    dangling_links: int
    dangling_targets: int
    dangling: list[DanglingLink]  # most linked first
    orphans: int  # live pages no other page links to (the hubs link to every page)
    orphan_paths: list[str]


@dataclass(frozen=True)
class Audit:
    site: str
    pages: int
    passing: int
    histogram: list[int]  # pages per score bucket of 10 points, the last 90-100
    similarity_histogram: list[int]  # pages per tenth of nearest-sibling similarity
    no_sibling: int  # pages for which no similar sibling was found
    reasons: dict[str, int]  # pages per reason code, every code present
    families: list[Family]  # by pass rate, worst first
    regions: list[Region]  # by pass rate, worst first
    worst_pages: list[WorstPage]
    nearest_pairs: list[NearPair]  # most similar first, each pair once
    duplicate_titles: list[Duplicate]
    duplicate_title_groups: int
    duplicate_descriptions: list[Duplicate]
    duplicate_description_groups: int
    over_limits: int  # pages whose title or description is over its limit
    over_limit_pages: list[OverLimit]  # furthest over first
    links: Links | None  # None unless asked for (it reads every document)

    def as_json(self) -> bytes:
        return orjson.dumps(
            {"schema_version": SCHEMA_VERSION, **asdict(self)}, option=orjson.OPT_INDENT_2
        )


def _pairs(rows: list[Any], limit: int) -> list[NearPair]:
    seen: set[frozenset[str]] = set()
    pairs = []
    for row in rows:
        key = frozenset((row["path"], row["nearest_path"]))
        if key not in seen:
            seen.add(key)
            pairs.append(NearPair(row["path"], row["nearest_path"], round(row["similarity"], 3)))
    return pairs[:limit]


def _reasons(document: bytes) -> list[dict[str, str]]:
    """A stored verdict's reasons (none in a document written before the quality gate)."""
    reasons: list[dict[str, str]] = orjson.loads(document).get("quality", {}).get("reasons", [])
    return reasons


async def _duplicates(
    connection: Connection, query: str, site: Site, limit: int
) -> tuple[list[Duplicate], int]:
    rows = await connection.fetch(query, site.id, limit)
    found = [Duplicate(row["text"], row["pages"], list(row["paths"])) for row in rows]
    return found, rows[0]["groups"] if rows else 0


async def _links(connection: Connection, site: Site, limit: int) -> Links:
    async with connection.transaction():
        await connection.execute(LINKS_TABLE)
        status = await connection.execute(LINKS_FILL, site.id)
        await connection.execute("ANALYZE audit_links")
        dangling = await connection.fetch(DANGLING, site.id, limit)
        orphans = await connection.fetch(ORPHANS, site.id, limit)
    return Links(
        int(status.split()[-1]),
        dangling[0]["total"] if dangling else 0,
        dangling[0]["targets"] if dangling else 0,
        [DanglingLink(row["target"], row["links"], row["example"]) for row in dangling],
        orphans[0]["orphans"] if orphans else 0,
        [row["path"] for row in orphans],
    )


async def audit(
    connection: Connection, site: Site, limit: int = 10, *, links: bool = False
) -> Audit:
    """What the stored verdicts say about the site's live pages (`limit` rows per list);
    with `links`, also the internal links that lead nowhere and the pages none lead to."""
    histogram = [0] * BUCKETS
    similarity = [0] * BUCKETS
    no_sibling = 0
    reasons = {reason.code: 0 for reason in REASONS}
    pages = passing = 0
    for row in await connection.fetch(VERDICT_GROUPS, site.id):
        count = row["pages"]
        pages += count
        passing += count if row["indexable"] else 0
        histogram[row["bucket"]] += count
        if row["similarity_bucket"] is None:
            no_sibling += count
        else:
            similarity[row["similarity_bucket"]] += count
        for bit, reason in enumerate(REASONS):
            if row["quality_flags"] & (1 << bit):
                reasons[reason.code] += count
    families = [Family(**dict(row)) for row in await connection.fetch(FAMILIES, site.id)]
    regions = [Region(**dict(row)) for row in await connection.fetch(REGIONS, site.id, limit)]
    worst = [
        WorstPage(row["path"], round(row["score"], 1), _reasons(row["document"]))
        for row in await connection.fetch(WORST_PAGES, site.id, limit)
    ]
    pairs = _pairs(await connection.fetch(NEAREST_PAIRS, site.id, limit), limit)
    titles, title_groups = await _duplicates(connection, DUPLICATE_TITLES, site, limit)
    descriptions, description_groups = await _duplicates(
        connection, DUPLICATE_DESCRIPTIONS, site, limit
    )
    long = await connection.fetch(OVER_LIMITS, site.id, TITLE_LIMIT, DESCRIPTION_LIMIT, limit)
    return Audit(
        site.slug,
        pages,
        passing,
        histogram,
        similarity,
        no_sibling,
        reasons,
        families,
        regions,
        worst,
        pairs,
        titles,
        title_groups,
        descriptions,
        description_groups,
        long[0]["pages"] if long else 0,
        [OverLimit(row["path"], row["title_length"], row["description_length"]) for row in long],
        await _links(connection, site, limit) if links else None,
    )
