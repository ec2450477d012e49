"""Versioned SQL migrations: `migrations/NNNN_name.sql`, applied in order, one transaction each."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import asyncpg

from seo_engine import database
from seo_engine.database import Connection
from seo_engine.settings import Settings

# Any constant works; it only has to be the same for every migrator.
MIGRATION_LOCK_KEY = 0x5E0E_0001

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
TABLE_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
SELECT_APPLIED = "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"
LOCK = "SELECT pg_advisory_lock($1)"
UNLOCK = "SELECT pg_advisory_unlock($1)"


class MigrationError(Exception):
    """The database's migration history does not match the migration files."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    migration: Migration
    applied_at: datetime | None


def available() -> list[Migration]:
    """The migration files shipped with the package, in version order."""
    found = []
    for entry in resources.files("seo_engine.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version, _, rest = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(version=version, name=rest, sql=entry.read_text("utf-8")))
    return sorted(found, key=lambda migration: migration.version)


def head() -> str:
    """The newest migration version."""
    return available()[-1].version


async def _applied(connection: Connection) -> dict[str, asyncpg.Record]:
    if not await connection.fetchval(TABLE_EXISTS):
        return {}
    return {row["version"]: row for row in await connection.fetch(SELECT_APPLIED)}


def _check_history(migrations: list[Migration], applied: dict[str, asyncpg.Record]) -> None:
    known = {migration.version: migration for migration in migrations}
    for version, row in applied.items():
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"database has migration {version} that this version of seo-engine does not "
                "know; upgrade seo-engine"
            )
        if migration.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {version}_{migration.name}.sql was changed after it was applied"
            )


async def status(connection: Connection) -> list[MigrationStatus]:
    """Every known migration with the time it was applied (None when pending)."""
    migrations = available()
    applied = await _applied(connection)
    _check_history(migrations, applied)
    return [
        MigrationStatus(m, applied[m.version]["applied_at"] if m.version in applied else None)
        for m in migrations
    ]


async def at_head(connection: Connection) -> bool:
    """Whether every known migration has been applied."""
    return all(item.applied_at is not None for item in await status(connection))


async def migrate(connection: Connection) -> list[Migration]:
    """Apply pending migrations under an advisory lock; return the ones applied now."""
    await connection.execute(LOCK, MIGRATION_LOCK_KEY)
    try:
        await connection.execute("SET statement_timeout = 0")
        await connection.execute(CREATE_TABLE)
        migrations = available()
        applied = await _applied(connection)
        _check_history(migrations, applied)
        done = []
        for migration in migrations:
            if migration.version in applied:
                continue
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    INSERT_APPLIED, migration.version, migration.name, migration.checksum
                )
            done.append(migration)
        return done
    finally:
        await connection.execute("RESET statement_timeout")
        await connection.execute(UNLOCK, MIGRATION_LOCK_KEY)


async def run_migrations(settings: Settings) -> list[Migration]:
    """Connect with the configured settings and apply pending migrations."""
    async with database.session(settings, bulk=True) as connection:
        return await migrate(connection)


async def run_status(settings: Settings) -> list[MigrationStatus]:
    """Connect with the configured settings and report every migration's state."""
    async with database.session(settings) as connection:
        return await status(connection)
