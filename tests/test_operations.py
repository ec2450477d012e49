from __future__ import annotations

import asyncio

import httpx

from seo_engine.serve.app import create_app
from tests.conftest import Databases, _client, make_settings


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_the_schema_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_readyz_is_503_while_migrations_are_pending(databases: Databases) -> None:
    settings = make_settings(await databases.create(migrated=False))
    async for client in _client(create_app(settings)):
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
        assert "db migrate" in response.json()["detail"]


async def test_healthz_stays_fast_while_every_connection_is_busy(database_url: str) -> None:
    settings = make_settings(database_url, pool_min_size=1, pool_max_size=1, acquire_timeout=0.3)
    app = create_app(settings)
    async for client in _client(app):
        async with app.state.pool.acquire():
            health = await asyncio.wait_for(client.get("/healthz"), timeout=0.2)
            assert health.status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["detail"] == "the database is unavailable; try again shortly"
            assert ready.headers["cache-control"] == "no-store"


async def test_unknown_api_paths_get_a_problem_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404
