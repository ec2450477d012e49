"""Page documents: everything a builder or a template needs to show one page.

`generate` builds each document once and stores it (`pages.document`) exactly as it is
served: the JSON API sends the stored bytes, the NDJSON export streams them and the HTML
pages render them, so the three can never disagree. The content hash is the hash of the
document itself (without its `updated_at` and `etag`), so the ETag changes whenever
anything served changes.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from seo_engine import etags
from seo_engine.ingest.sites import Site


def _json_ld(
    site: Site,
    url: str,
    page: dict[str, Any],
    service: dict[str, Any],
    location: dict[str, Any],
    faq: list[dict[str, str]],
) -> dict[str, Any]:
    """schema.org @graph: the Service in its city, the breadcrumb trail, the FAQ if any."""
    area: dict[str, Any] = {
        "@type": "City",
        "name": location["name"],
        "geo": {
            "@type": "GeoCoordinates",
            "latitude": location["latitude"],
            "longitude": location["longitude"],
        },
    }
    if location["region_name"]:
        area["containedInPlace"] = {"@type": "State", "name": location["region_name"]}
    graph: list[dict[str, Any]] = [
        {
            "@type": "Service",
            "@id": url + "#service",
            "name": page["h1"],
            "serviceType": service["name"],
            "category": service["category"],
            "description": page["meta_description"],
            "url": url,
            "areaServed": area,
            "provider": {"@type": "Organization", "name": site.name, "url": site.base_url + "/"},
        },
        {
            "@type": "BreadcrumbList",
            "itemListElement": [
                {"@type": "ListItem", "position": n, "name": crumb["name"], "item": crumb["url"]}
                for n, crumb in enumerate(page["breadcrumbs"], start=1)
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
    return {"@context": "https://schema.org", "@graph": graph}


def build(
    site: Site,
    path: str,
    service: dict[str, Any],
    location: dict[str, Any],
    text: dict[str, Any],
    links: dict[str, Any],
    quality: dict[str, Any],
    changed_at: datetime,
) -> tuple[bytes, bytes]:
    """A page's document (UTF-8 JSON, as served) and its content hash.

    `service` and `location` are the dimensions' template contexts; `text` holds the
    rendered title, meta_description, h1, intro, sections and faq, and for a page with
    overrides its local_paragraph (if set) and the names of its overridden fields;
    `quality` is the quality gate's verdict (`quality.Verdict.summary`). `changed_at`
    becomes `updated_at`: the time of the generate that stores the document if it changed.
    """
    url = site.base_url + path
    faq = text["faq"]
    page: dict[str, Any] = {
        "path": path,
        "url": url,
        "site": site.slug,
        "service": {
            "slug": service["slug"],
            "name": service["name"],
            "category": service["category"],
        },
        "location": {
            key: location[key]
            for key in (
                "slug",
                "name",
                "region_name",
                "region_code",
                "country_code",
                "population",
                "latitude",
                "longitude",
            )
        },
        "title": text["title"],
        "meta_description": text["meta_description"],
        "h1": text["h1"],
        "intro": text["intro"],
        **({"local_paragraph": text["local_paragraph"]} if "local_paragraph" in text else {}),
        "sections": text["sections"],
        "faq": faq,
        **({"overridden": text["overridden"]} if "overridden" in text else {}),
        "links": links,
        "breadcrumbs": [
            {"name": "Home", "url": site.base_url + "/"},
            {"name": service["name"], "url": f"{site.base_url}/{service['slug']}/"},
            {"name": location["name"], "url": url},
        ],
    }
    page["json_ld"] = _json_ld(site, url, page, service, location, faq)
    page["indexable"] = quality["indexable"]
    page["quality_score"] = quality["score"]
    page["quality"] = quality
    return _finished(page, changed_at)


def _finished(page: dict[str, Any], changed_at: datetime) -> tuple[bytes, bytes]:
    """The document with its content hash (of everything before `updated_at` and `etag`)."""
    content_hash = hashlib.blake2b(orjson.dumps(page), digest_size=16).digest()
    page["updated_at"] = changed_at
    page["etag"] = etags.of_document(content_hash)
    return orjson.dumps(page), content_hash


def relinked(
    document: bytes, links: dict[str, Any], changed_at: datetime, *, stamp: bool = False
) -> tuple[bytes, bytes] | None:
    """A stored document with these links (when pages it links to go live or away), as
    `build` would make it, updated at `changed_at`; None when its links are these already
    (unless `stamp`: the page itself goes live, so its document shows the time it did)."""
    page = orjson.loads(document)
    if page["links"] == links and not stamp:
        return None
    del page["updated_at"], page["etag"]
    page["links"] = links  # keeps its place among the keys
    return _finished(page, changed_at)


def ndjson(rows: list[asyncpg.Record]) -> bytes:
    """Export rows (stored documents, or tombstones built by the query) as NDJSON lines."""
    return b"".join(row["document"] + b"\n" for row in rows)


def next_position(rows: list[asyncpg.Record], position: tuple[Any, ...]) -> tuple[Any, ...]:
    """The keyset position after the last row, of the same kind as `position`: (id,),
    (updated_at, id), or (snapshot, change_xid, id)."""
    last = rows[-1]
    if len(position) == 3:
        return (position[0], last["change_xid"], last["id"])
    return (last["updated_at"], last["id"]) if len(position) == 2 else (last["id"],)
