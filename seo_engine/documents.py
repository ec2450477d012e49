"""Page documents: everything a builder or a template needs to show one page.

The same document feeds the JSON API, the NDJSON export and (later) the HTML page, so the
two renderers can never disagree.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from seo_engine.sites import Site

SCHEMA_ORG = "https://schema.org"


def etag(content_hash: bytes) -> str:
    """A strong ETag derived from the stored content hash (no rendering needed)."""
    return f'"{content_hash.hex()}"'


def service_hub_path(service_slug: str) -> str:
    return f"/{service_slug}/"


def breadcrumbs(site: Site, row: asyncpg.Record) -> list[dict[str, str]]:
    return [
        {"name": "Home", "url": f"{site.base_url}/"},
        {
            "name": row["service_name"],
            "url": site.base_url + service_hub_path(row["service_slug"]),
        },
        {"name": row["location_name"], "url": site.base_url + row["path"]},
    ]


def json_ld(
    site: Site,
    row: asyncpg.Record,
    crumbs: list[dict[str, str]],
    faq: list[dict[str, str]],
) -> dict[str, Any]:
    """schema.org structured data: the service offered in a city, breadcrumbs, FAQ."""
    url = site.base_url + row["path"]
    place: dict[str, Any] = {
        "@type": "City",
        "name": row["location_name"],
        "geo": {
            "@type": "GeoCoordinates",
            "latitude": row["latitude"],
            "longitude": row["longitude"],
        },
    }
    if row["region_name"]:
        place["containedInPlace"] = {"@type": "State", "name": row["region_name"]}
    graph: list[dict[str, Any]] = [
        {
            "@type": "Service",
            "@id": f"{url}#service",
            "name": row["h1"],
            "serviceType": row["service_name"],
            "category": row["service_category"],
            "description": row["meta_description"],
            "url": url,
            "areaServed": place,
            "provider": {"@type": "Organization", "name": site.name, "url": f"{site.base_url}/"},
        },
        {
            "@type": "BreadcrumbList",
            "itemListElement": [
                {"@type": "ListItem", "position": i, "name": c["name"], "item": c["url"]}
                for i, c in enumerate(crumbs, 1)
            ],
        },
    ]
    if faq:
        graph.append(
            {
                "@type": "FAQPage",
                "mainEntity": [
                    {
                        "@type": "Question",
                        "name": item["question"],
                        "acceptedAnswer": {"@type": "Answer", "text": item["answer"]},
                    }
                    for item in faq
                ],
            }
        )
    return {"@context": SCHEMA_ORG, "@graph": graph}


def page_document(site: Site, row: asyncpg.Record, *, parsed: bool = False) -> dict[str, Any]:
    """The whole page as the API serves it (see schemas.PageDocument).

    Stored JSON is passed through as-is for serialisation, or parsed for templates.
    """
    faq = orjson.loads(row["faq"])
    passthrough = orjson.loads if parsed else orjson.Fragment
    crumbs = breadcrumbs(site, row)
    return {
        "path": row["path"],
        "url": site.base_url + row["path"],
        "site": site.slug,
        "service": {
            "slug": row["service_slug"],
            "name": row["service_name"],
            "category": row["service_category"],
        },
        "location": {
            "slug": row["location_slug"],
            "name": row["location_name"],
            "region_name": row["region_name"],
            "region_code": row["region_code"],
            "country_code": row["country_code"],
            "population": row["population"],
            "latitude": row["latitude"],
            "longitude": row["longitude"],
        },
        "title": row["title"],
        "meta_description": row["meta_description"],
        "h1": row["h1"],
        "intro": row["intro"],
        "sections": passthrough(row["sections"]),
        "faq": faq,
        "links": passthrough(row["links"]),
        "breadcrumbs": crumbs,
        "json_ld": json_ld(site, row, crumbs, faq),
        "indexable": row["indexable"],
        "quality_score": row["quality_score"],
        "updated_at": row["updated_at"],
        "etag": etag(row["content_hash"]),
    }


def tombstone(site: Site, row: asyncpg.Record) -> dict[str, Any]:
    """What incremental consumers get for a removed page."""
    return {
        "path": row["path"],
        "url": site.base_url + row["path"],
        "deleted": True,
        "updated_at": row["updated_at"],
    }


def ndjson(site: Site, rows: list[asyncpg.Record]) -> bytes:
    """Export rows as NDJSON: a page document per live page, a tombstone per removed one."""
    return b"".join(
        orjson.dumps(
            tombstone(site, row) if row["deleted_at"] is not None else page_document(site, row)
        )
        + b"\n"
        for row in rows
    )


def next_position(rows: list[asyncpg.Record], by_update: bool) -> tuple[Any, ...]:
    """The keyset position after the last row: (id,) or (updated_at, id)."""
    last = rows[-1]
    return (last["updated_at"], last["id"]) if by_update else (last["id"],)
