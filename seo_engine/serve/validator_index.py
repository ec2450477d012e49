"""Each API worker's index of every live page's current validator, so that a conditional
request for any page, not only one the worker has cached, is answered 304 from memory.

The index is a sorted array of 64-bit fingerprints, one per live page, of (site, path,
content hash): 8 bytes a page, 33 MB for the bundled 4.1 million. PostgreSQL builds it in
one query over the covering path index. A client's ETag names a content hash (documents.py,
html.page_etag); the copy is current when the fingerprint of (site, path, that hash) is in
the array. Telling a stale copy current needs its fingerprint to equal one of the live
pages': a chance of pages / 2^64 per request (one in 4.6 trillion at 4 million pages).

Freshness: the index is used only while the worker's change listener (db/changes.py) is
connected. A NOTIFY from `generate`, `seed` or `sites add`, or a lost listener, drops it,
and a build that saw either is discarded. Every VERIFY_SECONDS of use it also checks
PostgreSQL's count of rows written to `pages`, so that a change without a NOTIFY (through
a transaction pooler, which does not deliver them, or by hand) drops it within seconds.
It is built when a conditional request first needs it, not at start; until it is ready,
and for sites over `validator_index_pages` pages, 304s are checked in the database.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from array import array
from bisect import bisect_left
from collections.abc import Coroutine
from hashlib import md5
from typing import Any

from seo_engine.db import database
from seo_engine.serve import pages
from seo_engine.settings import Settings

VERIFY_SECONDS = 5.0
RETRY_SECONDS = 5.0  # after a failed build or check
BUCKET_BITS = 16  # a fingerprint's top bits name its bucket
log = logging.getLogger(__name__)


def fingerprint(site_id: int, path: str, content_hash_hex: str) -> int:
    """The page's fingerprint, as pages.VALIDATOR_FINGERPRINTS computes it."""
    text = f"{site_id} {path} {content_hash_hex}".encode()
    # A hash, not security. hashlib's (OpenSSL) md5, not CPython's private `_md5`: that
    # saved about 0.5 µs of a 304's 40-60 µs (docs/decisions.md, 2026-12-02).
    digest = md5(text, usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class SortedFingerprints:
    """Sorted fingerprints and where each bucket of them (their top BUCKET_BITS bits)
    starts, so that a lookup bisects one bucket (a few dozen entries at 4 million pages)
    instead of the whole array: half the time, most of it cache misses."""

    __slots__ = ("starts", "values")
    _SHIFT = 64 - BUCKET_BITS
    _FIRST = -(1 << (BUCKET_BITS - 1))  # the lowest (negative) bucket number

    def __init__(self, values: array[int]) -> None:
        self.values = values
        floors = ((bucket + self._FIRST) << self._SHIFT for bucket in range(1 << BUCKET_BITS))
        self.starts = array("q", (bisect_left(values, floor) for floor in floors))
        self.starts.append(len(values))

    def __contains__(self, value: int) -> bool:
        bucket = (value >> self._SHIFT) - self._FIRST
        end = self.starts[bucket + 1]
        at = bisect_left(self.values, value, self.starts[bucket], end)
        return at < end and self.values[at] == value

    def __len__(self) -> int:
        return len(self.values)


class ValidatorIndex:
    """A worker's fingerprints of every live page's validator, kept current in the background."""

    def __init__(self, pool: database.ReadSource, settings: Settings) -> None:
        self._pool = pool
        self._timeout = settings.acquire_timeout
        self._max_pages = settings.validator_index_pages
        # Told by the listener, which runs when the page cache does (app.py): never True
        # without it, so no page cache means no index.
        self._listening = False
        self._fingerprints: SortedFingerprints | None = None
        self._writes = 0  # PAGES_WRITES when the index was built
        self._generation = 0  # bumped by every drop: a build or check that saw one is stale
        self._task: asyncio.Task[None] | None = None  # the build or check in flight
        self._next_task = 0.0  # monotonic time the next build or check may start
        self.hits = 0  # validators found current (a 304 without the database)
        self.misses = 0  # not current: answered in full

    def ready(self) -> bool:
        """Whether the index can answer now. Starts building it when it is missing, or
        checking it when that is due; the caller checks in the database meanwhile."""
        if not self._listening or self._max_pages == 0:
            return False
        if self._task is None and time.monotonic() >= self._next_task:
            work = self._build() if self._fingerprints is None else self._verify()
            self._start(work)
        return self._fingerprints is not None

    def holds(self, site_id: int, path: str, content_hash_hex: str) -> bool:
        """Whether `content_hash_hex` is the live page's (call when `ready()`)."""
        fingerprints = self._fingerprints
        if fingerprints is None:
            return False
        held = fingerprint(site_id, path, content_hash_hex) in fingerprints
        if held:
            self.hits += 1
        else:
            self.misses += 1
        return held

    def pages_changed(self, listening: bool) -> None:
        """The listener's news (changes.Watcher): pages may have changed."""
        self._listening = listening
        self._drop()

    def __len__(self) -> int:
        return len(self._fingerprints or ())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _drop(self) -> None:
        self._fingerprints = None
        self._generation += 1
        self._next_task = 0.0

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        def finished(_: asyncio.Task[None]) -> None:
            self._task = None

        self._task = asyncio.get_running_loop().create_task(work)
        self._task.add_done_callback(finished)

    async def _build(self) -> None:
        generation = self._generation
        started = time.monotonic()
        try:
            fingerprints, writes = await self._load()
        except Exception as error:  # a background task: log it, keep checking in the database
            self._failed("built", error)
            return
        if generation != self._generation:
            return  # pages changed meanwhile: the next conditional request rebuilds it
        if fingerprints is None:
            log.warning(
                "more than %d live pages (SEO_ENGINE_VALIDATOR_INDEX_PAGES): conditional "
                "requests are checked in the database",
                self._max_pages,
            )
            self._next_task = math.inf  # until pages change
            return
        self._fingerprints, self._writes = fingerprints, writes
        self._next_task = time.monotonic() + VERIFY_SECONDS
        seconds = time.monotonic() - started
        log.info("validator index: %d pages in %.1f s", len(fingerprints), seconds)

    async def _load(self) -> tuple[SortedFingerprints | None, int]:
        """The sorted fingerprints (None when there are more than `max_pages`) and
        PAGES_WRITES, read first: a write it does not count is in the snapshot or later."""
        fingerprints: array[int] = array("q")
        borrowed = database.acquire(self._pool, self._timeout)
        async with borrowed as connection, connection.transaction(readonly=True):
            writes = await pages.pages_writes(connection)
            async for run in pages.validator_fingerprints(connection, self._max_pages + 1):
                fingerprints.frombytes(run)
        if sys.byteorder == "little":
            fingerprints.byteswap()  # PostgreSQL sends them big-endian
        if len(fingerprints) > self._max_pages:
            return None, writes
        return SortedFingerprints(fingerprints), writes  # 0.1 s for 4 million pages

    async def _verify(self) -> None:
        generation = self._generation
        try:
            async with database.acquire(self._pool, self._timeout) as connection:
                writes = await pages.pages_writes(connection)
        except Exception as error:
            self._drop()  # unverified is not current
            self._failed("checked", error)
            return
        if generation != self._generation:
            return
        if writes != self._writes:
            log.info("pages changed without a NOTIFY: rebuilding the validator index")
            self._drop()
        else:
            self._next_task = time.monotonic() + VERIFY_SECONDS

    def _failed(self, what: str, error: Exception) -> None:
        if isinstance(error, database.UNAVAILABLE):
            log.debug("validator index not %s: %s", what, type(error).__name__)
        else:
            log.error("validator index not %s", what, exc_info=error)
        self._next_task = time.monotonic() + RETRY_SECONDS
