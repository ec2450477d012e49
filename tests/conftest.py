"""Database fixtures: throwaway databases on the embedded server or on DATABASE_URL."""

from __future__ import annotations

import asyncio
import inspect
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from seo_engine.db import embedded, migrate
from seo_engine.serve.app import create_app
from seo_engine.settings import Settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and inspect.iscoroutinefunction(item.obj)
            and item.get_closest_marker("anyio") is None
        ):
            item.add_marker(pytest.mark.anyio)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def with_database(dsn: str, name: str) -> str:
    """The same DSN pointing at another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An administrative DSN: DATABASE_URL when set, else a throwaway embedded server."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return configured
    return embedded.server_dsn(tmp_path_factory.mktemp("embedded"))


class Databases:
    """Creates uniquely named databases on the test server and drops them all at the end."""

    def __init__(self, server_dsn: str) -> None:
        self.server_dsn = server_dsn
        self.created: list[str] = []

    async def create(self, *, migrated: bool = True) -> str:
        name = f"seo_engine_test_{os.getpid()}_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(self.server_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        self.created.append(name)
        dsn = with_database(self.server_dsn, name)
        if migrated:
            connection = await asyncpg.connect(dsn)
            try:
                await migrate.migrate(connection)
            finally:
                await connection.close()
        return dsn

    async def drop_all(self) -> None:
        admin = await asyncpg.connect(self.server_dsn)
        try:
            for name in self.created:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def databases(server_dsn: str) -> Iterator[Databases]:
    registry = Databases(server_dsn)
    yield registry
    asyncio.run(registry.drop_all())


@pytest.fixture(scope="session")
def database_url(databases: Databases) -> str:
    """The session's migrated database."""
    return asyncio.run(databases.create())


def make_settings(dsn: str, **overrides: object) -> Settings:
    """Settings for tests, independent of the SEO_ENGINE_* variables of the machine."""
    values: dict[str, object] = {"database_url": dsn, "pool_min_size": 1, "pool_max_size": 4}
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def tmp_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the real app, inside its lifespan."""
    async for client in _client(create_app(settings)):
        yield client


@pytest.fixture
def fresh_dsn(databases: Databases) -> str:
    """A migrated database of this test's own."""
    return asyncio.run(databases.create())


@pytest.fixture
async def site_client(fresh_dsn: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The real app over a database holding the small generated test site."""
    from tests.seeding import setup_site

    await asyncio.to_thread(setup_site, fresh_dsn, tmp_path)
    async for client in _client(create_app(make_settings(fresh_dsn))):
        yield client
