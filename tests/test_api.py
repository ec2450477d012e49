"""The JSON API through the real app and its lifespan, on a generated site."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from seo_engine.serve.app import create_app
from tests.conftest import _client, make_settings
from tests.seeding import LOCATION_HEADER, LOCATIONS, SERVICE_HEADER, SERVICES, afetch, cli, write

pytestmark = pytest.mark.anyio  # module-level, so that parametrized tests get a backend too

PAGE_COUNT = len(SERVICES) * len(LOCATIONS)


async def walk(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while url:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        if body["next"]:
            assert response.headers["link"] == f'<{body["next"]}>; rel="next"'
        url = body["next"]
    return items


def problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == status
    detail: str = body["detail"]
    return detail


async def test_sites_lists_the_site(site_client: httpx.AsyncClient) -> None:
    response = await site_client.get("/api/v1/sites")
    assert response.json() == [
        {
            "slug": "testsite",
            "name": "Test Pros",
            "base_url": "https://test.example",
            "locale": "en",
            "path_pattern": "/{service}/{location}",
        }
    ]


async def test_services_lists_every_service_with_attributes(
    site_client: httpx.AsyncClient,
) -> None:
    body = (await site_client.get("/api/v1/services")).json()
    assert [(s["slug"], s["attributes"]) for s in body["items"]] == [
        ("gutter-cleaning", {"price_low": "100"}),
        ("roof-repair", {"price_low": "300"}),
    ]


async def test_locations_paginate_by_cursor(site_client: httpx.AsyncClient) -> None:
    items = await walk(site_client, "/api/v1/locations?limit=3")
    assert [item["slug"] for item in items] == [
        "austin-tx",
        "round-rock-tx",
        "san-marcos-tx",
        "waco-tx",
    ]
    only = (await site_client.get("/api/v1/locations?region=XX")).json()
    assert only["items"] == [] and only["next"] is None


async def test_walking_pages_returns_each_page_once_in_id_order(
    site_client: httpx.AsyncClient, fresh_dsn: str
) -> None:
    items = await walk(site_client, "/api/v1/pages?limit=3")
    stored = await afetch(fresh_dsn, "SELECT path FROM pages ORDER BY id")
    assert [item["path"] for item in items] == [row["path"] for row in stored]
    assert len(items) == PAGE_COUNT


async def test_a_walk_survives_a_concurrent_generate(
    site_client: httpx.AsyncClient, fresh_dsn: str, tmp_path: Path
) -> None:
    first = (await site_client.get("/api/v1/pages?limit=3")).json()
    changed = [LOCATIONS[0].replace("961855", "970000"), *LOCATIONS[1:]]
    path = write(tmp_path / "changed.csv", LOCATION_HEADER, changed)
    await asyncio.to_thread(cli, fresh_dsn, "seed", "locations", str(path))
    result = await asyncio.to_thread(cli, fresh_dsn, "generate")
    assert "2 updated" in result.stdout
    rest = await walk(site_client, first["next"])
    paths = [item["path"] for item in first["items"] + rest]
    assert sorted(paths) == sorted(set(paths)) and len(paths) == PAGE_COUNT


async def test_filters_narrow_the_list(site_client: httpx.AsyncClient) -> None:
    by_service = await walk(site_client, "/api/v1/pages?service=roof-repair")
    assert {item["service"] for item in by_service} == {"roof-repair"}
    assert len(by_service) == len(LOCATIONS)
    by_location = await walk(site_client, "/api/v1/pages?location=waco-tx&region=TX")
    assert sorted(item["path"] for item in by_location) == [
        "/gutter-cleaning/waco-tx",
        "/roof-repair/waco-tx",
    ]
    unknown = (await site_client.get("/api/v1/pages?service=no-such-service")).json()
    assert unknown["items"] == []


async def test_counts_are_given_only_when_asked(site_client: httpx.AsyncClient) -> None:
    plain = (await site_client.get("/api/v1/pages")).json()
    assert "count" not in plain
    exact = (await site_client.get("/api/v1/pages?count=exact&service=roof-repair")).json()
    assert (exact["count"], exact["count_type"]) == (len(LOCATIONS), "exact")
    estimated = (await site_client.get("/api/v1/pages?count=estimated")).json()
    assert estimated["count_type"] == "estimated"
    assert isinstance(estimated["count"], int) and estimated["count"] >= 0


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("limit=1001", "less than or equal to 1000"),
        ("limit=0", "greater than or equal to 1"),
        ("limit=-5", "greater than or equal to 1"),
        ("limit=ten", "valid integer"),
        ("updated_since=yesterday", "updated_since"),
        ("region=%00", "region"),
        ("service=" + "a" * 500, "service"),
        ("count=sometimes", "count"),
        ("site=Bad%20Site", "site"),
        ("indexable=perhaps", "indexable"),
    ],
)
async def test_bad_parameters_get_a_400_naming_them(
    site_client: httpx.AsyncClient, query: str, expected: str
) -> None:
    detail = problem(await site_client.get(f"/api/v1/pages?{query}"), 400)
    assert expected in detail


async def test_a_forged_cursor_is_refused(site_client: httpx.AsyncClient) -> None:
    genuine = (await site_client.get("/api/v1/pages?limit=2")).json()["next_cursor"]
    forged = genuine[:-2] + ("AA" if genuine[-2:] != "AA" else "BB")
    assert problem(await site_client.get(f"/api/v1/pages?cursor={forged}"), 400) == (
        "cursor is not valid"
    )
    other_query = await site_client.get(f"/api/v1/pages?cursor={genuine}&service=roof-repair")
    assert "another query" in problem(other_query, 400)
    garbage = await site_client.get("/api/v1/pages?cursor=not-a-cursor")
    assert problem(garbage, 400) == "cursor is not valid"


async def test_incremental_sync_returns_changed_pages_and_tombstones(
    site_client: httpx.AsyncClient, fresh_dsn: str, tmp_path: Path
) -> None:
    synced_at = datetime.now(UTC)
    changed = [LOCATIONS[0].replace("961855", "970000"), *LOCATIONS[1:]]
    await asyncio.to_thread(
        cli,
        fresh_dsn,
        "seed",
        "locations",
        str(write(tmp_path / "c.csv", LOCATION_HEADER, changed)),
    )
    only_roofs = write(tmp_path / "s.csv", SERVICE_HEADER, SERVICES[:1])
    await asyncio.to_thread(cli, fresh_dsn, "seed", "services", str(only_roofs), "--prune")
    await asyncio.to_thread(cli, fresh_dsn, "generate")
    since = synced_at.isoformat().replace("+00:00", "Z")
    items = await walk(site_client, f"/api/v1/pages?updated_since={since}&limit=2")
    live = sorted(item["path"] for item in items if not item["deleted"])
    dead = sorted(item["path"] for item in items if item["deleted"])
    assert dead == [
        f"/gutter-cleaning/{slug}"
        for slug in ("austin-tx", "round-rock-tx", "san-marcos-tx", "waco-tx")
    ]
    assert live == [
        f"/roof-repair/{slug}"
        for slug in ("austin-tx", "round-rock-tx", "san-marcos-tx", "waco-tx")
    ]
    tombstone = next(item for item in items if item["deleted"])
    assert set(tombstone) == {"path", "url", "service", "location", "updated_at", "deleted"}
    later = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    assert (await site_client.get(f"/api/v1/pages?updated_since={later}")).json()["items"] == []


async def test_a_page_document_has_everything_needed_to_render_it(
    site_client: httpx.AsyncClient,
) -> None:
    response = await site_client.get("/api/v1/pages/roof-repair/austin-tx")
    assert response.status_code == 200
    page = response.json()
    assert page["url"] == "https://test.example/roof-repair/austin-tx"
    assert page["service"]["slug"] == "roof-repair"
    assert page["location"]["name"] == "Austin"
    assert page["sections"][0]["heading"] == "Nearby"
    assert page["faq"] == [{"question": "Do you serve Austin?", "answer": "Yes."}]
    assert [crumb["name"] for crumb in page["breadcrumbs"]] == ["Home", "Roof Repair", "Austin"]
    types = [node["@type"] for node in page["json_ld"]["@graph"]]
    assert types == ["Service", "BreadcrumbList", "FAQPage"]
    assert page["json_ld"]["@graph"][0]["areaServed"]["name"] == "Austin"
    assert {link["path"] for link in page["links"]["services"]} == {"/gutter-cleaning/austin-tx"}
    assert response.headers["etag"] == page["etag"]
    assert response.headers["last-modified"].endswith(" GMT")
    assert "s-maxage" in response.headers["cache-control"]


async def test_conditional_requests_get_304_without_a_body(site_client: httpx.AsyncClient) -> None:
    first = await site_client.get("/api/v1/pages/roof-repair/austin-tx")
    tag, modified = first.headers["etag"], first.headers["last-modified"]
    same = await site_client.get(
        "/api/v1/pages/roof-repair/austin-tx", headers={"If-None-Match": tag}
    )
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", tag)
    by_date = await site_client.get(
        "/api/v1/pages/roof-repair/austin-tx", headers={"If-Modified-Since": modified}
    )
    assert by_date.status_code == 304
    stale = await site_client.get(
        "/api/v1/pages/roof-repair/austin-tx", headers={"If-None-Match": '"0000"'}
    )
    assert stale.status_code == 200


async def test_unknown_pages_and_sites_are_404(site_client: httpx.AsyncClient) -> None:
    assert "no page" in problem(await site_client.get("/api/v1/pages/roof-repair/nowhere"), 404)
    assert "no site" in problem(await site_client.get("/api/v1/pages?site=other"), 404)
    unknown_conditional = await site_client.get(
        "/api/v1/pages/roof-repair/nowhere", headers={"If-None-Match": '"x"'}
    )
    problem(unknown_conditional, 404)


async def test_several_sites_need_the_site_parameter(
    site_client: httpx.AsyncClient, fresh_dsn: str, tmp_path: Path
) -> None:
    second = (Path(__file__).parent / "data" / "site.toml").read_text()
    second = second.replace('"testsite"', '"second"').replace("test.example", "second.example")
    (tmp_path / "second.toml").write_text(second)
    await asyncio.to_thread(cli, fresh_dsn, "sites", "add", str(tmp_path / "second.toml"))
    app_settings = make_settings(fresh_dsn)
    async for client in _client(create_app(app_settings)):
        detail = problem(await client.get("/api/v1/pages"), 400)
        assert "pass ?site= one of: testsite, second" in detail
        assert (await client.get("/api/v1/pages?site=second")).json()["items"] == []


async def test_export_streams_every_page_document(
    site_client: httpx.AsyncClient,
) -> None:
    response = await site_client.get("/api/v1/export.ndjson")
    assert response.headers["content-type"] == "application/x-ndjson"
    *lines, end = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) == PAGE_COUNT
    assert end == {"sync_token": response.headers["sync-token"]}  # where the next sync resumes
    assert {line["path"] for line in lines} == {
        item["path"] for item in await walk(site_client, "/api/v1/pages?limit=1000")
    }


async def test_export_is_gzipped_for_clients_that_accept_it(
    site_client: httpx.AsyncClient,
) -> None:
    response = await site_client.get("/api/v1/export.ndjson", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert len(response.text.splitlines()) == PAGE_COUNT + 1  # and the sync token
    raw = await site_client.get("/api/v1/export.ndjson", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert gzip.compress(raw.content)  # the identity body is plain NDJSON
    assert raw.text.count("\n") == PAGE_COUNT + 1


async def test_an_incremental_export_includes_tombstones(
    site_client: httpx.AsyncClient, fresh_dsn: str, tmp_path: Path
) -> None:
    synced_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    kept = write(tmp_path / "l.csv", LOCATION_HEADER, LOCATIONS[:3])
    await asyncio.to_thread(cli, fresh_dsn, "seed", "locations", str(kept), "--prune")
    response = await site_client.get(f"/api/v1/export.ndjson?updated_since={synced_at}")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert sorted(line["path"] for line in lines if line.get("deleted")) == [
        "/gutter-cleaning/waco-tx",
        "/roof-repair/waco-tx",
    ]


async def test_an_exhausted_pool_gives_503_with_retry_after(fresh_dsn: str, tmp_path: Path) -> None:
    from tests.seeding import setup_site

    await asyncio.to_thread(setup_site, fresh_dsn, tmp_path)
    settings = make_settings(fresh_dsn, pool_min_size=1, pool_max_size=1, acquire_timeout=0.2)
    app = create_app(settings)
    async for client in _client(app):
        assert (await client.get("/api/v1/pages")).status_code == 200
        async with app.state.pool.acquire():
            response = await client.get("/api/v1/pages/roof-repair/austin-tx")
            problem(response, 503)
            assert response.headers["retry-after"] == "1"
