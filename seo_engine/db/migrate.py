"""Versioned SQL migrations: `migrations/NNNN_name.sql`, applied in order, one transaction each."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import asyncpg

from seo_engine.db import database
from seo_engine.db.database import Connection
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
# Transaction-scoped, like everything else here, so that migrations work behind a
# transaction-mode pooler: each migration takes the lock, re-reads the history, applies.
LOCK = "SELECT pg_advisory_xact_lock($1)"
NO_TIME_LIMIT = "SET LOCAL statement_timeout = 0"


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
    for entry in resources.files("seo_engine.db.migrations").iterdir():
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
    """Apply pending migrations, one transaction each under an advisory lock.

    Returns the ones applied now; a concurrent `migrate` waits and then finds them applied.
    """
    migrations = available()
    done: list[Migration] = []
    while True:
        async with connection.transaction():
            await connection.execute(LOCK, MIGRATION_LOCK_KEY)
            await connection.execute(NO_TIME_LIMIT)
            await connection.execute(CREATE_TABLE)
            applied = await _applied(connection)
            _check_history(migrations, applied)
            pending = [item for item in migrations if item.version not in applied]
            if not pending:
                return done
            migration = pending[0]
            await connection.execute(migration.sql)
            await connection.execute(
                INSERT_APPLIED, migration.version, migration.name, migration.checksum
            )
        done.append(migration)


async def run_migrations(settings: Settings) -> list[Migration]:
    """Connect with the configured settings and apply pending migrations."""
    async with database.session(settings, bulk=True) as connection:
        return await migrate(connection)


async def run_status(settings: Settings) -> list[MigrationStatus]:
    """Connect with the configured settings and report every migration's state."""
    async with database.session(settings) as connection:
        return await status(connection)
