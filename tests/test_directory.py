"""The sites an API process serves: loaded on first use, then refreshed in the background."""

from __future__ import annotations

import asyncio

from seo_engine import database
from seo_engine.directory import SiteDirectory
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
