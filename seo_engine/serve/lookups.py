"""Page lookups in the API workers, batched: concurrent requests for pages share a query.

While a batch of lookups is in the database, the requests that arrive meanwhile wait and
then go together in the next one, like a database's group commit. Under load one query
answers dozens of requests (one round trip, one statement, one pool checkout instead of
dozens); an idle worker sends each lookup at once, so nothing ever waits for a timer.
Keys are deduplicated within a batch. (aiodataloader batches per event-loop tick with no
bound on batches in flight, which under load means many small concurrent queries.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

import asyncpg

from seo_engine.db import database
from seo_engine.serve import pages
from seo_engine.serve.pages import PathKey

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_KEYS = 500  # per query; more waiting keys go in the next batch
BUSY = "all database connections are busy"

_Waiter = tuple[float, "asyncio.Future[Any]"]  # (deadline, future)


class Batcher(Generic[K, V]):
    """Coalesces concurrent `get(key)` calls into calls of `fetch(keys)`, at most
    `concurrency` at a time.

    A caller waits at most `wait_timeout` seconds for its key to go to `fetch` (then it
    gets DatabaseUnavailable, a 503, like a request that waited that long for a pooled
    connection): a batch stuck on a slow database must not hold everyone behind it.
    """

    def __init__(
        self,
        fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]],
        wait_timeout: float,
        concurrency: int = 1,
    ) -> None:
        self._fetch = fetch
        self._wait_timeout = wait_timeout
        self._concurrency = concurrency
        self._waiting: dict[K, list[_Waiter]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self._expiry: asyncio.TimerHandle | None = None

    async def get(self, key: K) -> V | None:
        """The value for `key` (None when `fetch` did not return it)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V | None] = loop.create_future()
        waiter = (loop.time() + self._wait_timeout, future)
        self._waiting.setdefault(key, []).append(waiter)
        if len(self._running) < self._concurrency:
            if not self._scheduled:
                # Soon, not now: requests already read in this loop iteration join the batch.
                self._scheduled = True
                loop.call_soon(self._dispatch)
        elif self._expiry is None:  # one timer for everyone waiting
            self._expiry = loop.call_at(waiter[0], self._expire)
        try:
            return await future
        except asyncio.CancelledError:  # its request was cancelled before the batch went
            self._forget(key, waiter)
            raise

    def _forget(self, key: K, waiter: _Waiter) -> None:
        waiting = self._waiting.get(key)
        if waiting is not None and waiter in waiting:
            waiting.remove(waiter)
            if not waiting:
                del self._waiting[key]

    def _expire(self) -> None:
        """Fail the callers that waited too long; come back for the next one."""
        self._expiry = None
        now = asyncio.get_running_loop().time()
        for key, waiting in list(self._waiting.items()):
            for waiter in [w for w in waiting if w[0] <= now]:
                self._forget(key, waiter)
                if not waiter[1].done():
                    waiter[1].set_exception(database.DatabaseUnavailable(BUSY))
        deadlines = [deadline for waiting in self._waiting.values() for deadline, _ in waiting]
        if deadlines:
            self._expiry = asyncio.get_running_loop().call_at(min(deadlines), self._expire)

    def _dispatch(self) -> None:
        self._scheduled = False
        while self._waiting and len(self._running) < self._concurrency:
            keys = list(self._waiting)[:MAX_KEYS]
            batch = {key: self._waiting.pop(key) for key in keys}
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._done)
        if not self._waiting and self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._dispatch()  # what arrived meanwhile goes now, as one batch

    async def _run(self, batch: dict[K, list[_Waiter]]) -> None:
        try:
            found = await self._fetch(list(batch))
        except BaseException as error:
            for waiting in batch.values():
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(_for_one_waiter(error))
            if not isinstance(error, Exception):  # cancelled: shutting down
                raise
            return
        for key, waiting in batch.items():
            value = found.get(key)
            for _, future in waiting:
                if not future.done():  # its request may have been cancelled
                    future.set_result(value)


def _for_one_waiter(error: BaseException) -> BaseException:
    """Each waiter raises an exception of its own (a shared one would collect every
    waiter's traceback); database outages stay DatabaseUnavailable (503)."""
    if isinstance(error, database.DatabaseUnavailable):
        return database.DatabaseUnavailable(error.reason)
    if isinstance(error, database.UNAVAILABLE):
        return database.DatabaseUnavailable(f"database unreachable: {type(error).__name__}")
    if isinstance(error, asyncio.CancelledError):
        return database.DatabaseUnavailable("the server is shutting down")
    return error


class PageLookups:
    """A worker's batched lookups of live pages by (site id, path)."""

    def __init__(self, pool: database.ReadSource, acquire_timeout: float) -> None:
        self._pool = pool
        self._timeout = acquire_timeout
        self.pages: Batcher[PathKey, asyncpg.Record] = Batcher(self._pages, acquire_timeout)
        self.versions: Batcher[PathKey, asyncpg.Record] = Batcher(self._versions, acquire_timeout)
        self.on_batch: Callable[[int], None] | None = None  # told each batch's size (metrics)

    async def _pages(self, keys: list[PathKey]) -> dict[PathKey, asyncpg.Record]:
        if self.on_batch is not None:
            self.on_batch(len(keys))
        async with database.acquire(self._pool, self._timeout) as connection:
            rows = await pages.pages_by_paths(connection, keys)
        return {(row["site_id"], row["path"]): row for row in rows}

    async def _versions(self, keys: list[PathKey]) -> dict[PathKey, asyncpg.Record]:
        if self.on_batch is not None:
            self.on_batch(len(keys))
        async with database.acquire(self._pool, self._timeout) as connection:
            rows = await pages.versions_by_paths(connection, keys)
        return {(row["site_id"], row["path"]): row for row in rows}
