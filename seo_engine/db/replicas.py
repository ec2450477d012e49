"""Read replicas (docs/scale-out.md §3): SEO_ENGINE_READ_DATABASE_URL names one streaming
standby or several; the server sends its reads to those that answer and are within
SEO_ENGINE_REPLICA_MAX_LAG seconds of the primary, and to the primary otherwise. Writes,
migrations, LISTEN and the cursor key stay on the primary.

How far behind a replica is: every CHECK_SECONDS the primary's WAL position is sampled; a
replica is as far behind as the oldest sample it has not replayed (zero when it has replayed
the latest). That counts what the replica has not applied, whatever the primary was doing
(`now() - pg_last_xact_replay_timestamp()` grows on a primary that writes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Literal

import asyncpg

from seo_engine.db import changes, database
from seo_engine.settings import Settings, display_name, host_urls

ReplicaState = Literal["in use", "behind", "unreachable"]
CHECK_SECONDS = 1.0
CHECK_TIMEOUT = 2.0
WAIT_POLL_SECONDS = 0.1
# Positions as byte offsets (int8), so that Python compares them.
PRIMARY_POSITION = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8"
REPLICA_POSITION = (
    "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8 AS replayed"
)
CHECK_FAILURES: tuple[type[Exception], ...] = (*database.UNAVAILABLE, asyncpg.PostgresError)
log = logging.getLogger(__name__)


class ReplicasBehind(Exception):
    """Replicas had not replayed a commit in the time allowed; the message names them."""


@dataclass(eq=False)
class Replica:
    name: str
    pool: asyncpg.Pool
    reachable: bool = False
    lag: float | None = None  # seconds behind the primary; None: not known yet
    replayed: int = 0  # the WAL position it had replayed at its last check
    reads: int = 0


@dataclass
class _Positions:
    """The primary's WAL positions, sampled every CHECK_SECONDS, oldest first."""

    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, position: int, limit: int) -> None:
        self.samples.append((time.monotonic(), position))
        while len(self.samples) > limit:
            self.samples.popleft()

    def lag(self, replayed: int) -> float:
        """Seconds since the primary first wrote past `replayed` (0 if it has not)."""
        for sampled_at, position in self.samples:
            if position > replayed:
                return time.monotonic() - sampled_at
        return 0.0

    def latest(self) -> int | None:
        return self.samples[-1][1] if self.samples else None


class ReadPools:
    """Lends connections for reads: from a replica in use (round robin), else the primary.

    Quacks like asyncpg's Pool where `database.acquire` uses it (`acquire`, `release`).
    A replica whose connection fails is dropped at once and taken back by the next check
    that finds it answering and within the lag limit. Whenever the replicas in use change,
    or all of them have replayed a change the primary announced, the `watchers` (the page
    cache, the validator index, the sitemap shards) are told pages changed, so that nothing
    a lagging replica answered outlives the lag limit in a cache.
    """

    def __init__(
        self,
        primary: asyncpg.Pool,
        replicas: list[Replica],
        settings: Settings,
    ) -> None:
        self.primary = primary
        self.replicas = replicas
        self.primary_reads = 0
        self._max_lag = settings.replica_max_lag
        self._watchers: tuple[changes.Watcher, ...] = ()
        self._in_use: list[Replica] = []
        self._turn = itertools.count()
        self._lent: dict[int, Replica] = {}
        self._positions = _Positions()
        self._sample_limit = int(self._max_lag / CHECK_SECONDS) + 60
        self._announced: int | None = None  # a change to clear caches for once replayed
        self._change_pending = False

    # -- lending ---------------------------------------------------------------------------

    async def acquire(self, floor: int = 0) -> database.Proxy:
        """A connection to a replica in use that has replayed `floor`, else the primary."""
        in_use = [r for r in self._in_use if r.replayed >= floor] if floor else self._in_use
        if in_use:
            start = next(self._turn)
            for offset in range(len(in_use)):
                replica = in_use[(start + offset) % len(in_use)]
                try:
                    connection = await replica.pool.acquire()
                except database.CONNECTION_ERRORS as error:
                    self._lost(replica, error)
                    continue
                replica.reads += 1
                self._lent[id(connection)] = replica
                return connection
        self.primary_reads += 1
        connection = await self.primary.acquire()
        return connection

    async def release(self, connection: database.Proxy) -> None:
        replica = self._lent.pop(id(connection), None)
        if replica is None:
            await self.primary.release(connection)
            return
        if connection.is_closed():  # its server went away mid-request
            self._lost(replica, None)
        await replica.pool.release(connection)

    def watch(self, *watchers: changes.Watcher) -> None:
        """Tell these caches whenever what the reads see may have gone back in time."""
        self._watchers = watchers

    def _lost(self, replica: Replica, error: BaseException | None) -> None:
        if replica.reachable:
            reason = type(error).__name__ if error else "connection closed"
            log.warning("read replica %s lost (%s); reading from the primary", replica.name, reason)
        replica.reachable = False
        self._choose()

    def _choose(self) -> None:
        in_use = [
            replica
            for replica in self.replicas
            if replica.reachable and (replica.lag is None or replica.lag <= self._max_lag)
        ]
        if in_use != self._in_use:
            self._in_use = in_use
            self._tell_watchers()  # what the previous choice answered may be older

    def _tell_watchers(self) -> None:
        for watcher in self._watchers:
            watcher.pages_changed(True)

    def state(self, replica: Replica) -> ReplicaState:
        if replica in self._in_use:
            return "in use"
        return "behind" if replica.reachable else "unreachable"

    # -- checking --------------------------------------------------------------------------

    def pages_changed(self, listening: bool) -> None:
        """A changes.Watcher: once every replica in use has replayed this change, the caches
        are told again (they were told now, when the primary committed)."""
        self._change_pending = True

    async def keep_checking(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(CHECK_SECONDS)

    async def check(self) -> None:
        """Sample the primary's position, then ask each replica how far it has replayed."""
        position = await self._ask_primary()
        if position is not None:
            self._positions.add(position, self._sample_limit)
            if self._change_pending:
                self._change_pending, self._announced = False, position
        await asyncio.gather(*(self._check(replica) for replica in self.replicas))
        self._choose()
        if self._announced is not None and self._in_use:
            replayed = min(replica.replayed for replica in self._in_use)
            if replayed >= self._announced:
                self._announced = None
                self._tell_watchers()

    async def _ask_primary(self) -> int | None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                async with database.acquire(self.primary, CHECK_TIMEOUT) as connection:
                    position: int = await connection.fetchval(PRIMARY_POSITION)
        except CHECK_FAILURES as error:
            log.debug("primary position: %s", type(error).__name__)
            return None
        return position

    async def _check(self, replica: Replica) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                async with database.acquire(replica.pool, CHECK_TIMEOUT) as connection:
                    row = await connection.fetchrow(REPLICA_POSITION)
        except CHECK_FAILURES as error:
            if replica.reachable:
                log.warning("read replica %s unreachable (%s)", replica.name, type(error).__name__)
            replica.reachable = False
            return
        assert row is not None
        if not replica.reachable:
            log.info("read replica %s answers", replica.name)
        replica.reachable = True
        if not row["pg_is_in_recovery"]:  # promoted, or a primary: it has everything
            replica.replayed = self._positions.latest() or 0
            replica.lag = 0.0
        elif self._positions.latest() is not None:  # else the primary cannot say: unknown
            replica.replayed = row["replayed"] or 0
            replica.lag = self._positions.lag(replica.replayed)

    async def close(self) -> None:
        for replica in self.replicas:
            await _close_pool(replica.pool)


class _CaughtUp:
    """ReadPools that lend only servers that have replayed `floor`."""

    def __init__(self, reads: ReadPools, floor: int) -> None:
        self._reads = reads
        self._floor = floor

    def acquire(self) -> Awaitable[database.Proxy]:
        return self._reads.acquire(self._floor)

    async def release(self, connection: database.Proxy) -> None:
        await self._reads.release(connection)


def caught_up(source: database.ReadSource, floor: int) -> database.ReadSource:
    """Where to continue a read made at WAL position `floor` (sync.read_point): a replica
    that has replayed it, or the primary. A replica further back could miss a change the
    first read saw, and the read's sync token would then skip it for good."""
    return _CaughtUp(source, floor) if isinstance(source, ReadPools) else source


async def _close_pool(pool: asyncpg.Pool) -> None:
    try:
        await asyncio.wait_for(pool.close(), timeout=5.0)
    except TimeoutError:
        pool.terminate()


async def open_read_pools(primary: asyncpg.Pool, settings: Settings) -> ReadPools:
    """A pool per replica host (connecting lazily to one that does not answer now), checked
    once before the first read."""
    assert settings.read_database_url is not None
    replicas = []
    for url in host_urls(settings.read_database_url):
        try:
            pool = await database.create_pool(url, settings)
        except database.DatabaseUnavailable as error:
            log.warning("read replica %s: %s", display_name(url), error.reason)
            pool = await database.create_pool(url, settings, lazy=True)
        replicas.append(Replica(display_name(url), pool))
    reads = ReadPools(primary, replicas, settings)
    await reads.check()
    return reads


async def wait_for_replay(
    connection: database.Connection, settings: Settings, timeout: float
) -> list[str]:
    """Wait until every replica of SEO_ENGINE_READ_DATABASE_URL has replayed what the
    primary (`connection`) has written so far; return their names, or raise ReplicasBehind
    naming those that had not after `timeout` seconds (or did not answer)."""
    if settings.read_database_url is None:
        return []
    position: int = await connection.fetchval(PRIMARY_POSITION)
    urls = host_urls(settings.read_database_url)
    outcomes = await asyncio.gather(*(_replayed(url, settings, position, timeout) for url in urls))
    pairs = zip(urls, outcomes, strict=True)
    behind = [f"{display_name(url)} ({why})" for url, why in pairs if why]
    if behind:
        raise ReplicasBehind(
            f"after {timeout:g}s these read replicas had not replayed it: " + ", ".join(behind)
        )
    return [display_name(url) for url in urls]


async def _replayed(url: str, settings: Settings, position: int, timeout: float) -> str | None:
    """None once the replica at `url` has replayed `position`; else why not."""
    why = "did not answer"
    deadline = time.monotonic() + timeout
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while True:
                try:
                    connection = await database.connect(url, settings)
                except database.DatabaseUnavailable:
                    await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                    continue
                try:
                    while True:
                        row = await connection.fetchrow(REPLICA_POSITION)
                        assert row is not None
                        if not row["pg_is_in_recovery"] or (row["replayed"] or 0) >= position:
                            return None
                        why = "behind"
                        await asyncio.sleep(WAIT_POLL_SECONDS)
                except database.CONNECTION_ERRORS:
                    why = "did not answer"
                finally:
                    with contextlib.suppress(*database.CONNECTION_ERRORS):
                        await connection.close(timeout=1)
    return why
