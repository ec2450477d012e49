"""The sites an API process serves: loaded on first use, then refreshed in the background."""

from __future__ import annotations

import asyncio

from seo_engine.db import database
from seo_engine.ingest.sites import Site
from seo_engine.serve.directory import SiteDirectory, site_for_host
from tests.conftest import make_settings
from tests.seeding import afetch

ADD_SITE = (
    "INSERT INTO sites (slug, name, base_url, domain) "
    "VALUES ($1, 'Some Pros', 'https://' || $1 || '.example', $1 || '.example')"
)


async def test_stale_sites_are_served_while_one_refresh_runs(fresh_dsn: str) -> None:
    await afetch(fresh_dsn, ADD_SITE, "first")
    pool = await database.create_pool(fresh_dsn, make_settings(fresh_dsn, pool_max_size=2))
    directory = SiteDirectory()
    try:
        assert [site.slug for site in await directory.all(pool, 2.0)] == ["first"]
        await afetch(fresh_dsn, ADD_SITE, "second")
        directory._loaded_at -= 60  # stale
        answers = await asyncio.gather(*(directory.all(pool, 2.0) for _ in range(50)))
        assert {tuple(site.slug for site in sites) for sites in answers} == {("first",)}
        refresh = directory._refresh
        assert refresh is not None
        await refresh
        assert [site.slug for site in await directory.all(pool, 2.0)] == ["first", "second"]
        assert directory._refresh is refresh, "one refresh for all fifty requests"
    finally:
        await directory.close()
        await pool.close()


async def test_known_sites_need_a_first_load_and_never_wait_for_a_refresh(
    fresh_dsn: str,
) -> None:
    await afetch(fresh_dsn, ADD_SITE, "first")
    pool = await database.create_pool(fresh_dsn, make_settings(fresh_dsn, pool_max_size=2))
    directory = SiteDirectory()
    try:
        assert directory.known(pool, 2.0) == [], "nothing is known before the first load"
        assert directory._refresh is None, "and nothing loads it but all()"
        await directory.all(pool, 2.0)
        await afetch(fresh_dsn, ADD_SITE, "second")
        directory._loaded_at -= 60  # stale
        assert [site.slug for site in directory.known(pool, 2.0)] == ["first"]
        refresh = directory._refresh
        assert refresh is not None
        await refresh
        assert [site.slug for site in directory.known(pool, 2.0)] == ["first", "second"]
    finally:
        await directory.close()
        await pool.close()


def test_a_site_is_picked_by_host_with_or_without_its_port() -> None:
    first, second = (
        Site(
            n,
            slug,
            slug,
            f"https://{slug}.example",
            f"{slug}.example",
            "en",
            "/{service}/{location}",
            {},
            "1",
        )
        for n, slug in ((1, "first"), (2, "second"))
    )
    assert site_for_host([first, second], "SECOND.example:8000") is second
    assert site_for_host([first, second], "second.example") is second
    assert site_for_host([first, second], "[::1]") is first, "unknown hosts get the first"
    assert site_for_host([], "second.example") is None
