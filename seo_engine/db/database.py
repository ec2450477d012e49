"""Connections: DSN resolution, the pool with its timeouts, and what counts as 'unavailable'."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from seo_engine.db import embedded
from seo_engine.settings import Settings

APPLICATION_NAME = "seo-engine"
log = logging.getLogger(__name__)

# A single connection (CLI jobs) or one borrowed from the pool (requests).
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

Proxy: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


class ReadSource(Protocol):
    """Where reads borrow connections: the pool, or the read replicas (db/replicas.py)."""

    def acquire(self) -> Awaitable[Proxy]: ...

    async def release(self, connection: Proxy) -> None: ...


# Errors that mean "the database is not reachable right now", never "the request was bad".
# Most are asyncpg.PostgresError too: whoever also handles PostgresError catches these first.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    # SQLSTATE 57P0x: the server ended the session (terminated, shut down, crashed, its
    # database dropped, idle too long).
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.DatabaseDroppedError,
    asyncpg.IdleSessionTimeoutError,
    asyncpg.QueryCanceledError,
    asyncpg.TooManyConnectionsError,
    # SQLSTATE 40001 here means a standby cancelled a read that its replay conflicted with
    # (nothing here asks for SERIALIZABLE): a read replica's hiccup, fine when retried.
    asyncpg.SerializationError,
    OSError,
    TimeoutError,
    ConnectionError,
)


class DatabaseUnavailable(Exception):
    """No connection could be had in time; callers answer 503 with Retry-After."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Anything a statement can fail with: for cleanup that must not mask the first error.
ANY_FAILURE: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)

# Everything that means "no database right now" where a connection is used.
UNAVAILABLE: tuple[type[Exception], ...] = (DatabaseUnavailable, *CONNECTION_ERRORS)


def resolve_dsn(settings: Settings) -> str:
    """Return the configured DSN, starting the embedded server when none is configured."""
    if settings.database_url is not None:
        return settings.database_url
    return embedded.server_dsn(settings.data_dir)


def server_settings(settings: Settings) -> dict[str, str]:
    """Per-connection server settings: bounds on every statement and idle transaction, and
    UTC, in which PostgreSQL writes the timestamps of the documents it builds."""
    return {
        "application_name": APPLICATION_NAME,
        "timezone": "UTC",
        "statement_timeout": str(int(settings.statement_timeout * 1000)),
        "idle_in_transaction_session_timeout": str(
            int(settings.idle_in_transaction_timeout * 1000)
        ),
    }


def connect_options(settings: Settings, *, bulk: bool = False) -> dict[str, Any]:
    """Keyword arguments shared by single connections and the pool.

    `bulk` connections (generate, seed) run statements that legitimately take minutes on
    millions of rows, so they have no statement time limit; everything else does.
    """
    session = server_settings(settings)
    if bulk:
        session["statement_timeout"] = "0"
        # generate keeps its lock-holding transaction open while workers render.
        session["idle_in_transaction_session_timeout"] = "0"
    return {
        "command_timeout": None if bulk else settings.command_timeout,
        "statement_cache_size": settings.statement_cache_size,
        "server_settings": session,
        "timeout": settings.acquire_timeout + 3.0,
    }


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset (`SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`), a round trip per request that measured as a large part of a
    page lookup. Requests here change no session state (no SET, LISTEN, cursor or session
    lock); asyncpg still rolls back a transaction left open before calling this.
    """


async def create_pool(dsn: str, settings: Settings, *, lazy: bool = False) -> asyncpg.Pool:
    """Create the application pool; raise DatabaseUnavailable if the server cannot be reached.

    A `lazy` pool opens no connection now: each acquire connects (or fails) on demand.
    """
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn,
            min_size=0 if lazy else settings.pool_min_size,
            max_size=settings.pool_max_size,
            max_inactive_connection_lifetime=300.0,
            reset=_keep_session,
            **connect_options(settings),
        )
    except CONNECTION_ERRORS as error:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {type(error).__name__}") from None
    return pool


async def connect(dsn: str, settings: Settings, *, bulk: bool = False) -> asyncpg.Connection:
    """Open one connection for a CLI job (pool timeouts unless `bulk`)."""
    try:
        return await asyncpg.connect(dsn, **connect_options(settings, bulk=bulk))
    except CONNECTION_ERRORS as error:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {type(error).__name__}") from None


# Told how long each `acquire` waited (None: it timed out): the server's metrics set it.
on_acquire: Callable[[float | None], None] | None = None


@asynccontextmanager
async def acquire(pool: ReadSource, timeout: float) -> AsyncIterator[Connection]:
    """Borrow a connection, waiting at most `timeout` seconds before DatabaseUnavailable.

    `asyncio.timeout` rather than `acquire(timeout=…)`, which wraps every acquire in
    `wait_for` and so in a task of its own: a measurable cost on a sub-millisecond lookup.
    """
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            connection = await pool.acquire()
    except TimeoutError:
        if on_acquire is not None:
            on_acquire(None)
        raise DatabaseUnavailable("all database connections are busy") from None
    except CONNECTION_ERRORS as error:
        raise DatabaseUnavailable(f"database unreachable: {type(error).__name__}") from None
    if on_acquire is not None:
        on_acquire(time.perf_counter() - started)
    try:
        yield connection
    finally:
        await pool.release(connection)


async def refresh_statistics(connection: Connection, table: str) -> None:
    """ANALYZE `table` after a bulk change has committed, so that the next plans see the
    new rows (autovacuum gets to it only later). Best effort: the change is committed
    already, so a connection lost here is logged, never reported as a failed job."""
    try:
        await connection.execute(f"ANALYZE {table}")
    except ANY_FAILURE as error:
        log.warning(
            "%s changed; its statistics were not refreshed (%s)", table, type(error).__name__
        )


@asynccontextmanager
async def session(settings: Settings, *, bulk: bool = False) -> AsyncIterator[asyncpg.Connection]:
    """One connection for a CLI job: resolve the DSN (embedded or not), connect, close."""
    dsn = await asyncio.to_thread(resolve_dsn, settings)
    connection = await connect(dsn, settings, bulk=bulk)
    try:
        yield connection
    finally:
        await connection.close(timeout=5)
