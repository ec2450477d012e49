"""Behind PgBouncer in transaction mode: the API, `seed`, `generate` and `migrate` work."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from seo_engine.cli import app as cli_app
from seo_engine.serve.app import create_app
from tests.conftest import Databases, _client, make_settings
from tests.pgbouncer import installed, pgbouncer
from tests.seeding import DATA, LOCATION_HEADER, LOCATIONS, SERVICE_HEADER, SERVICES, fetch, write

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not installed(), reason="no pgbouncer (make test installs it)"),
]

runner = CliRunner()


def bounced_cli(dsn: str, *args: str) -> str:
    result = runner.invoke(
        cli_app, list(args), env={"DATABASE_URL": dsn, "SEO_ENGINE_STATEMENT_CACHE_SIZE": "0"}
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_cli_builds_a_site_through_pgbouncer(databases: Databases, tmp_path: Path) -> None:
    direct = asyncio.run(databases.create(migrated=False))
    locations = write(tmp_path / "l.csv", LOCATION_HEADER, LOCATIONS)
    services = write(tmp_path / "s.csv", SERVICE_HEADER, SERVICES)
    with pgbouncer(direct, pool_size=2) as bounced:
        assert "applied 0001_schema" in bounced_cli(bounced, "db", "migrate")
        bounced_cli(bounced, "sites", "add", str(DATA / "site.toml"))
        bounced_cli(bounced, "seed", "locations", str(locations))
        bounced_cli(bounced, "seed", "services", str(services))
        first = bounced_cli(bounced, "generate", "--workers", "2")
        again = bounced_cli(bounced, "generate", "--workers", "2")
    assert "8 pages; 8 inserted, 0 updated, 0 unchanged, 0 removed" in first
    assert "8 pages; 0 inserted, 0 updated, 8 unchanged, 0 removed" in again
    live = fetch(direct, "SELECT count(*) AS n FROM pages WHERE deleted_at IS NULL")
    assert live[0]["n"] == len(LOCATIONS) * len(SERVICES)


async def get(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.get(url, headers={"host": "test.example"})


async def test_the_api_serves_through_pgbouncer(fresh_dsn: str, tmp_path: Path) -> None:
    from tests.seeding import setup_site

    await asyncio.to_thread(setup_site, fresh_dsn, tmp_path)
    with pgbouncer(fresh_dsn, pool_size=2) as bounced:
        # More pooled client connections than server connections: statements of one
        # client run on several server connections, which breaks named prepared statements.
        settings = make_settings(bounced, statement_cache_size=0, pool_min_size=4, pool_max_size=8)
        async for client in _client(create_app(settings)):
            urls = [
                "/api/v1/pages?limit=2",
                "/api/v1/pages/roof-repair/austin-tx",
                "/api/v1/services",
                "/roof-repair/austin-tx",
                "/sitemap.xml",
                "/readyz",
            ]
            responses = await asyncio.gather(*(get(client, url) for url in urls * 20))
            assert {(r.request.url.path, r.status_code) for r in responses} == {
                (url.split("?")[0], 200) for url in urls
            }
            listed = (await get(client, "/api/v1/pages?limit=2")).json()
            following = await get(client, listed["next"])
            assert following.status_code == 200, following.text
            assert following.json()["items"][0]["path"] != listed["items"][0]["path"]
