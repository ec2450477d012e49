"""The hot paths and the worker page cache: same answers as FastAPI's routes, served from
memory while fresh, dropped as soon as pages change (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from seo_engine.serve.app import create_app
from tests.conftest import _client, make_settings
from tests.seeding import LOCATION_HEADER, LOCATIONS, afetch, cli, setup_site, write
from tests.waiting import until_async

PAGE = "/roof-repair/austin-tx"
DOCUMENT = "/api/v1/pages/roof-repair/austin-tx"
SETTLE_SECONDS = 3.0


@pytest.fixture
async def cached(site_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(site_dsn, page_cache_seconds=300)
    async for client in _client(create_app(settings)):
        await wait_for_listener(site_dsn)
        yield client


async def wait_for_listener(dsn: str) -> None:
    """The listener connects in the background; NOTIFY before it listens would be lost."""

    async def listening() -> bool:
        rows = await afetch(
            dsn, "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
        )
        return bool(rows[0]["n"])

    await until_async(listening, SETTLE_SECONDS, "the page cache listener to start")


async def test_conditional_head_and_gzip_requests(cached: httpx.AsyncClient) -> None:
    page = await cached.get(PAGE, headers={"accept-encoding": "identity"})
    tag = page.headers["etag"]
    again = await cached.get(PAGE, headers={"if-none-match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    modified = await cached.get(PAGE, headers={"if-modified-since": page.headers["last-modified"]})
    assert modified.status_code == 304
    head = await cached.head(PAGE)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0
    raw = await cached.get(PAGE, headers={"accept-encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.content == page.content  # httpx decodes gzip
    stale = await cached.get(DOCUMENT, headers={"if-none-match": '"0000"'})
    assert stale.status_code == 200


async def test_a_cached_page_is_served_from_memory_until_a_change_is_notified(
    cached: httpx.AsyncClient, fresh_dsn: str
) -> None:
    assert (await cached.get(PAGE)).status_code == 200
    # Removed behind the app's back, without NOTIFY: the cached copy is still served.
    await afetch(fresh_dsn, "UPDATE pages SET deleted_at = now() WHERE path = $1", PAGE)
    assert (await cached.get(PAGE)).status_code == 200
    await afetch(fresh_dsn, "SELECT pg_notify('seo_engine_changes', '')")

    async def gone() -> bool:
        return (await cached.get(PAGE)).status_code == 404

    await until_async(gone, SETTLE_SECONDS)


async def test_generate_clears_every_workers_cache(
    cached: httpx.AsyncClient, fresh_dsn: str, tmp_path: Path
) -> None:
    before = (await cached.get(DOCUMENT)).json()
    changed = [LOCATIONS[0].replace("961855", "970000"), *LOCATIONS[1:]]
    await asyncio.to_thread(
        cli,
        fresh_dsn,
        "seed",
        "locations",
        str(write(tmp_path / "l2.csv", LOCATION_HEADER, changed)),
    )
    result = await asyncio.to_thread(cli, fresh_dsn, "generate")
    assert result.exit_code == 0, result.output

    async def updated() -> bool:
        document = (await cached.get(DOCUMENT)).json()
        return bool(document["etag"] != before["etag"])

    await until_async(updated, SETTLE_SECONDS)
    assert (await cached.get(DOCUMENT)).json()["location"]["population"] == 970000


async def test_the_database_going_away_is_a_503_not_a_500(fresh_dsn: str, tmp_path: Path) -> None:
    await asyncio.to_thread(setup_site, fresh_dsn, tmp_path)
    settings = make_settings(
        "postgresql://nobody@127.0.0.1:1/none", page_cache_seconds=0, acquire_timeout=0.5
    )
    async for client in _client(create_app(settings)):
        for url in (PAGE, DOCUMENT):
            response = await client.get(url)
            assert response.status_code == 503, url
            assert response.headers["retry-after"]
            assert response.headers["content-type"] == "application/problem+json"


def test_gzip_body_is_compressed_once() -> None:
    from seo_engine.serve.pagecache import Entry, PageCache

    cache = PageCache(60, 10_000)
    entry = Entry('"x"', None, [], b"a" * 5000)
    cache.put("k", entry)
    first = entry.gzipped()
    assert first is not None and gzip.decompress(first) == b"a" * 5000
    assert entry.gzipped() is first
    cache.put("other", Entry('"y"', None, [], b"b" * 9000))
    assert cache.get("k") is None, "the byte budget evicts the least recently used entry"


def test_a_full_cache_of_versions_stays_within_its_byte_budget() -> None:
    import tracemalloc
    from datetime import UTC, datetime, timedelta

    from seo_engine.ingest.sites import Site
    from seo_engine.serve.answers import _Page
    from seo_engine.serve.pagecache import PageCache

    site = Site(
        1, "s", "S", "https://s.example", "s.example", "en", "/{service}/{location}", {}, ""
    )
    budget = 2 * 1024 * 1024
    tracemalloc.start()
    try:
        cache = PageCache(60, budget)
        before = tracemalloc.get_traced_memory()[0]
        for n in range(20_000):  # far more than fit: the budget evicts
            page = _Page(site, f"/roof-repair/some-city-{n}-tx")
            row = {
                "content_hash": n.to_bytes(16, "big"),
                "updated_at": datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=n),
                "indexable": True,
            }
            cache.put(page.key, page.entry(row, with_body=False))
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 1000 < len(cache) < 20_000
    assert used < budget * 1.15, f"{used:,} bytes for a {budget:,}-byte budget"


async def test_with_two_sites_a_document_needs_its_site_as_before(
    cached: httpx.AsyncClient, fresh_dsn: str, tmp_path: Path
) -> None:
    from tests.seeding import DATA

    second = (DATA / "site.toml").read_text().replace('"testsite"', '"second"')
    (tmp_path / "second.toml").write_text(second.replace("test.example", "second.example"))
    await asyncio.to_thread(cli, fresh_dsn, "sites", "add", str(tmp_path / "second.toml"))

    async def both_sites_known() -> bool:  # the site directory refreshes every 5 s
        return len((await cached.get("/api/v1/sites")).json()) == 2

    await until_async(both_sites_known, 8)
    ambiguous = await cached.get(DOCUMENT)
    assert ambiguous.status_code == 400
    assert "second" in ambiguous.json()["detail"]
    assert (await cached.get(DOCUMENT + "?site=testsite")).status_code == 200
