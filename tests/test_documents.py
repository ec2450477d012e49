"""Page documents as generate stores them: what they hold and what their hash covers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from seo_engine.generate import documents
from seo_engine.ingest.sites import Site

SITE = Site(
    id=1,
    slug="testsite",
    name="Test Pros",
    base_url="https://test.example",
    domain="test.example",
    locale="en",
    path_pattern="/{service}/{location}",
    content={},
    content_version="",
)
SERVICE = {"slug": "roof-repair", "name": "Roof Repair", "category": "Roofing"}
LOCATION = {
    "slug": "waco-tx",
    "name": "Waco",
    "region_name": "Texas",
    "region_code": "TX",
    "country_code": "US",
    "population": 138486,
    "latitude": 31.54933,
    "longitude": -97.14667,
}
TEXT = {
    "title": "Roof Repair in Waco",
    "meta_description": "Find roof repair in Waco.",
    "h1": "Roof Repair in Waco",
    "intro": "Fixing leaks </script> and shingles.",
    "sections": [{"heading": "Nearby", "body": "Austin (150 km)"}],
    "faq": [{"question": "Do you serve Waco?", "answer": "Yes."}],
}
LINKS = {"nearby": [], "services": []}
MONDAY = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


QUALITY = {"score": 75.0, "indexable": True, "reasons": [], "nearest": None}


def build(
    text: dict[str, Any] = TEXT,
    location: dict[str, Any] = LOCATION,
    service: dict[str, Any] = SERVICE,
    changed_at: datetime = MONDAY,
) -> tuple[dict[str, Any], bytes, bytes]:
    body, content_hash = documents.build(
        SITE, "/roof-repair/waco-tx", service, location, text, LINKS, QUALITY, changed_at
    )
    return orjson.loads(body), body, content_hash


def test_a_document_holds_the_page_its_breadcrumbs_and_structured_data() -> None:
    document, _, content_hash = build()
    assert document["url"] == "https://test.example/roof-repair/waco-tx"
    assert document["intro"] == "Fixing leaks </script> and shingles."
    assert document["breadcrumbs"] == [
        {"name": "Home", "url": "https://test.example/"},
        {"name": "Roof Repair", "url": "https://test.example/roof-repair/"},
        {"name": "Waco", "url": "https://test.example/roof-repair/waco-tx"},
    ]
    graph = document["json_ld"]["@graph"]
    assert [node["@type"] for node in graph] == ["Service", "BreadcrumbList", "FAQPage"]
    assert graph[0]["areaServed"]["containedInPlace"] == {"@type": "State", "name": "Texas"}
    assert graph[2]["mainEntity"][0]["acceptedAnswer"] == {"@type": "Answer", "text": "Yes."}
    assert (document["updated_at"], document["etag"]) == (
        "2026-11-30T08:00:00+00:00",
        f'"{content_hash.hex()}"',
    )


def test_a_page_without_faqs_or_region_has_no_faq_or_state_node() -> None:
    document, _, _ = build(text={**TEXT, "faq": []}, location={**LOCATION, "region_name": ""})
    graph = document["json_ld"]["@graph"]
    assert [node["@type"] for node in graph] == ["Service", "BreadcrumbList"]
    assert "containedInPlace" not in graph[0]["areaServed"]


def test_the_hash_covers_what_is_served_but_not_when_it_was_stored() -> None:
    _, body, content_hash = build()
    _, later_body, later_hash = build(changed_at=datetime(2026, 12, 1, tzinfo=UTC))
    assert later_hash == content_hash and later_body != body
    _, _, renamed = build(service={**SERVICE, "name": "Roofing Repair"})
    _, _, moved = build(location={**LOCATION, "population": 138487})
    assert len({content_hash, renamed, moved}) == 3
