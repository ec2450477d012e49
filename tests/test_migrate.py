from __future__ import annotations

import asyncio

import asyncpg
import orjson
import pytest

from seo_engine.db import migrate
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
            "indexnow_ledger",
            "job_runs",
            "location_neighbours",
            "locations",
            "override_bases",
            "overrides",
            "page_builds",
            "pages",
            "publish_log",
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


OLD_PAGE = """
INSERT INTO pages (site_id, service_id, location_id, path, title, meta_description, h1, intro,
                   sections, faq, links, quality_score, indexable, content_hash, deleted_at)
OVERRIDING SYSTEM VALUE
VALUES (1, $1, $2, $3, 'Roof Repair in Waco', 'Find roof repair.', 'Roof Repair in Waco',
        'Intro.', '[{"heading": "H", "body": "B"}]', '[{"question": "Q?", "answer": "A."}]',
        '{"nearby": [], "services": []}', 0.75, true, '\\x00ff', $4)
"""


async def test_stored_documents_are_built_for_pages_made_before_them(databases: Databases) -> None:
    connection = await asyncpg.connect(await databases.create(migrated=False))
    try:
        before, documents = migrate.available()[:2], migrate.available()[2]
        assert documents.name == "documents"
        await connection.execute(migrate.CREATE_TABLE)
        for migration in before:
            await connection.execute(migration.sql)
            await connection.execute(
                migrate.INSERT_APPLIED, migration.version, migration.name, migration.checksum
            )
        await connection.execute(
            "INSERT INTO sites (slug, name, base_url, domain) "
            "VALUES ('testsite', 'Test Pros', 'https://test.example', 'test.example');"
            "INSERT INTO services (site_id, key, slug, name, category) "
            "VALUES (1, 's1', 'roof-repair', 'Roof Repair', 'Roofing');"
            "INSERT INTO locations (site_id, key, slug, name, region_name, region_code, "
            "country_code, population, latitude, longitude) "
            "VALUES (1, '4', 'waco-tx', 'Waco', 'Texas', 'TX', 'US', 138486, 31.5, -97.1)"
        )
        await connection.execute(
            OLD_PAGE.replace("$1", "1")
            .replace("$2", "1")
            .replace("$3", "'/roof-repair/waco-tx'")
            .replace("$4", "NULL")
        )
        # A tombstone whose location was pruned: there is nothing to build it from.
        await connection.execute(
            OLD_PAGE.replace("$1", "1")
            .replace("$2", "99")
            .replace("$3", "'/roof-repair/gone'")
            .replace("$4", "now()")
        )
        ids = await connection.fetch("SELECT id, path FROM pages ORDER BY id")

        applied = [m.version for m in await migrate.migrate(connection)]
        assert applied == [m.version for m in migrate.available()[2:]]  # documents on

        rows = await connection.fetch("SELECT id, path, document FROM pages ORDER BY id")
        assert [(row["id"], row["path"]) for row in rows] == [tuple(row) for row in ids]
        live = orjson.loads(rows[0]["document"])
        assert live["url"] == "https://test.example/roof-repair/waco-tx"
        assert (live["intro"], live["faq"]) == ("Intro.", [{"question": "Q?", "answer": "A."}])
        assert [node["@type"] for node in live["json_ld"]["@graph"]] == [
            "Service",
            "BreadcrumbList",
            "FAQPage",
        ]
        assert live["etag"] == '"00ff"'
        assert rows[1]["document"] is None
        new_id = await connection.fetchval(
            "INSERT INTO pages (site_id, service_id, location_id, path, title, meta_description, "
            "h1, document, quality_score, indexable, content_hash) VALUES (1, 2, 1, '/x', 't', "
            "'d', 'h', '{}', 0.5, true, '\\x01') RETURNING id"
        )
        assert new_id > max(row["id"] for row in ids)
        with pytest.raises(asyncpg.CheckViolationError):  # a live page always has a document
            await connection.execute("UPDATE pages SET document = NULL WHERE id = $1", new_id)
    finally:
        await connection.close()
