"""Worker processes of `generate`: render the pages of one service and COPY them to staging."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any

from seo_engine import database, sites
from seo_engine.content import ContentError
from seo_engine.database import Connection
from seo_engine.pagebuild import (
    PAGE_COLUMNS,
    Dimension,
    LengthReport,
    PageBuilder,
    location_context,
    service_context,
)
from seo_engine.settings import Settings

COPY_BATCH_ROWS = 2000
PR_SET_PDEATHSIG = 1

SELECT_SERVICES = """
SELECT id, key, slug, name, category, description, attributes::text AS attributes
FROM services WHERE site_id = $1 ORDER BY id
"""
SELECT_LOCATIONS = """
SELECT id, key, slug, name, region_name, region_code, country_code, population,
       latitude, longitude, timezone, attributes::text AS attributes
FROM locations WHERE site_id = $1 AND population >= $2 ORDER BY id
"""
SELECT_NEIGHBOURS = """
SELECT n.location_id, n.neighbour_id, n.distance_km
FROM location_neighbours n JOIN locations l ON l.id = n.location_id
WHERE l.site_id = $1 ORDER BY n.location_id, n.rank
"""


class ConnectionLost(Exception):
    """The database connection closed while pages were being copied."""


class WorkerFailure(Exception):
    """A worker failed; plain arguments so that it crosses process boundaries."""

    def __init__(self, message: str, lost_connection: bool = False) -> None:
        super().__init__(message, lost_connection)
        self.message = message
        self.lost_connection = lost_connection


@dataclass
class ServiceResult:
    service_id: int
    pages: int
    lengths: LengthReport


@dataclass
class _Worker:
    loop: asyncio.AbstractEventLoop
    connection: Connection
    builder: PageBuilder
    stage: str
    progress: Queue[int]


_worker: _Worker | None = None
_failed_start: WorkerFailure | None = None


def _failure(error: Exception) -> WorkerFailure:
    lost = isinstance(
        error, (ConnectionLost, database.DatabaseUnavailable, *database.CONNECTION_ERRORS)
    )
    return WorkerFailure(f"{type(error).__name__}: {error}", lost)


async def load_builder(connection: Connection, site_slug: str) -> PageBuilder:
    """Read a site's dimensions and neighbours into a PageBuilder."""
    site = await sites.find(connection, site_slug)
    services = [
        Dimension(row["id"], row["key"], row["slug"], service_context(row))
        for row in await connection.fetch(SELECT_SERVICES, site.id)
    ]
    locations = [
        Dimension(row["id"], row["key"], row["slug"], location_context(row))
        for row in await connection.fetch(SELECT_LOCATIONS, site.id, site.options.min_population)
    ]
    neighbours: dict[int, list[tuple[int, float]]] = {}
    for row in await connection.fetch(SELECT_NEIGHBOURS, site.id):
        neighbours.setdefault(row["location_id"], []).append(
            (row["neighbour_id"], row["distance_km"])
        )
    return PageBuilder(site, services, locations, neighbours)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (even by SIGKILL).

    Otherwise an orphaned worker would finish its service and keep its connection open.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: orphans end when their task ends
        pass
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def start(dsn: str, settings: Settings, site_slug: str, stage: str, progress: Queue[int]) -> None:
    """Process-pool initializer: connect and load everything once per worker."""
    global _worker, _failed_start
    # The parent decides what an interrupt means; workers just stop when it tells them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    loop = asyncio.new_event_loop()
    try:
        connection = loop.run_until_complete(database.connect(dsn, settings, bulk=True))
        builder = loop.run_until_complete(load_builder(connection, site_slug))
    except Exception as error:  # reported by the first task instead of a broken pool
        _failed_start = _failure(error)
        return
    _worker = _Worker(loop, connection, builder, stage, progress)


async def _copy_service(worker: _Worker, service_id: int) -> ServiceResult:
    lengths = LengthReport()
    batch: list[tuple[Any, ...]] = []
    pages = 0
    for record in worker.builder.pages(service_id, lengths):
        batch.append(record)
        if len(batch) >= COPY_BATCH_ROWS:
            await _copy(worker, batch)
            pages += len(batch)
            batch = []
    if batch:
        await _copy(worker, batch)
        pages += len(batch)
    return ServiceResult(service_id, pages, lengths)


async def _copy(worker: _Worker, batch: list[tuple[Any, ...]]) -> None:
    # asyncpg does not notice a dead connection until its input is exhausted: check first.
    if worker.connection.is_closed():
        raise ConnectionLost("the database connection closed during generate")
    await worker.connection.copy_records_to_table(
        worker.stage, records=batch, columns=list(PAGE_COLUMNS)
    )
    worker.progress.put(len(batch))


def render_service(service_id: int) -> ServiceResult:
    """Render and stage every page of one service (runs in a worker process)."""
    if _failed_start is not None:
        raise _failed_start
    assert _worker is not None, "worker not started"
    try:
        return _worker.loop.run_until_complete(_copy_service(_worker, service_id))
    except ContentError:
        raise
    except Exception as error:  # asyncpg errors do not always survive pickling
        raise _failure(error) from None
