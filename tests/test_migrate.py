from __future__ import annotations

import asyncio

import asyncpg
import pytest

from seo_engine import migrate
from tests.conftest import Databases


async def test_migrating_a_fresh_database_applies_every_migration(databases: Databases) -> None:
    connection = await asyncpg.connect(await databases.create(migrated=False))
    try:
        applied = await migrate.migrate(connection)
        assert [m.version for m in applied] == [m.version for m in migrate.available()]
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        assert [row["tablename"] for row in tables] == [
            "app_secrets",
            "location_neighbours",
            "locations",
            "pages",
            "redirects",
            "schema_migrations",
            "services",
            "sites",
        ]
    finally:
        await connection.close()


async def test_migrating_again_changes_nothing(databases: Databases) -> None:
    connection = await asyncpg.connect(await databases.create(migrated=True))
    try:
        assert await migrate.migrate(connection) == []
        assert await migrate.at_head(connection)
    finally:
        await connection.close()


async def test_status_lists_pending_migrations_before_and_applied_after(
    databases: Databases,
) -> None:
    connection = await asyncpg.connect(await databases.create(migrated=False))
    try:
        before = await migrate.status(connection)
        assert [row.applied_at for row in before] == [None] * len(migrate.available())
        assert not await migrate.at_head(connection)
        await migrate.migrate(connection)
        after = await migrate.status(connection)
        assert all(row.applied_at is not None for row in after)
    finally:
        await connection.close()


async def test_concurrent_migrators_apply_each_migration_once(databases: Databases) -> None:
    dsn = await databases.create(migrated=False)
    connections = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate.migrate(c) for c in connections))
        applied = sorted(m.version for result in results for m in result)
        assert applied == [m.version for m in migrate.available()], "each exactly once"
        assert await migrate.at_head(connections[0])
    finally:
        for connection in connections:
            await connection.close()


async def test_an_edited_migration_is_detected(databases: Databases) -> None:
    connection = await asyncpg.connect(await databases.create(migrated=True))
    try:
        await connection.execute("UPDATE schema_migrations SET checksum = 'edited'")
        with pytest.raises(migrate.MigrationError, match="was changed after it was applied"):
            await migrate.migrate(connection)
    finally:
        await connection.close()


async def test_a_migration_from_a_newer_release_is_detected(databases: Databases) -> None:
    connection = await asyncpg.connect(await databases.create(migrated=True))
    try:
        await connection.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ('9999', 'future', '')"
        )
        with pytest.raises(migrate.MigrationError, match="9999"):
            await migrate.status(connection)
    finally:
        await connection.close()
