"""Worker processes of `generate`: render the pages of one service and COPY them to staging."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.queues import Queue

from seo_engine.db import copyguard, database
from seo_engine.db.database import Connection
from seo_engine.generate import copyrows
from seo_engine.generate.pagebuild import (
    Dimension,
    LengthReport,
    PageBuilder,
    location_context,
    service_context,
)
from seo_engine.ingest import sites
from seo_engine.ingest.content import ContentError
from seo_engine.settings import Settings

COPY_BATCH_ROWS = 2000
GONE_COLUMNS = ("service_id", "location_id")
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
# What is stored for one service before this generate: the transaction that will merge
# the results has not written anything these workers could see.
SELECT_STORED = """
SELECT location_id, content_hash, deleted_at IS NULL AS live
FROM pages WHERE site_id = $1 AND service_id = $2
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
    """What one service produced: rendered pages, new-page batches sent, rows staged."""

    service_id: int
    pages: int
    lengths: LengthReport
    sent: int = 0
    staged: int = 0
    gone: int = 0


# Messages to the parent: a count of rendered pages, or a COPY payload of new pages.
Message = int | bytes


@dataclass
class _Worker:
    loop: asyncio.AbstractEventLoop
    connection: Connection
    builder: PageBuilder
    stage: str
    messages: Queue[Message]


_worker: _Worker | None = None
_failed_start: WorkerFailure | None = None


def _failure(error: Exception) -> WorkerFailure:
    lost = isinstance(
        error, (ConnectionLost, database.DatabaseUnavailable, *database.CONNECTION_ERRORS)
    )
    return WorkerFailure(f"{type(error).__name__}: {error}", lost)


async def load_builder(connection: Connection, site_slug: str, changed_at: datetime) -> PageBuilder:
    """Read a site's dimensions and neighbours into a PageBuilder."""
    return await builder_for(connection, await sites.find(connection, site_slug), changed_at)


async def builder_for(
    connection: Connection, site: sites.Site, changed_at: datetime
) -> PageBuilder:
    """A PageBuilder for this site (as stored, or as a site file being edited defines it)."""
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
    return PageBuilder(site, services, locations, neighbours, changed_at)


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


def start(
    dsn: str,
    settings: Settings,
    site_slug: str,
    changed_at: datetime,
    stage: str,
    messages: Queue[Message],
) -> None:
    """Process-pool initializer: connect and load everything once per worker."""
    global _worker, _failed_start
    # The parent decides what an interrupt means; workers just stop when it tells them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    loop = asyncio.new_event_loop()
    try:
        connection = loop.run_until_complete(database.connect(dsn, settings, bulk=True))
        builder = loop.run_until_complete(load_builder(connection, site_slug, changed_at))
    except Exception as error:  # reported by the first task instead of a broken pool
        _failed_start = _failure(error)
        return
    _worker = _Worker(loop, connection, builder, stage, messages)


async def _copy_service(worker: _Worker, service_id: int) -> ServiceResult:
    """Render one service; new pages go to the parent, changed ones to the stage.

    The parent inserts new pages straight into `pages` inside its merge transaction;
    pages whose content changed (or that return from a tombstone) are staged for the
    merge's UPDATE; unchanged pages are only counted; stored live pages this run no longer
    renders are staged by key as gone.
    """
    site_id = worker.builder.site.id
    stored = {
        row["location_id"]: (row["content_hash"], row["live"])
        for row in await worker.connection.fetch(SELECT_STORED, site_id, service_id)
    }
    result = ServiceResult(service_id, 0, LengthReport())
    new: list[bytes] = []
    changed: list[bytes] = []
    for page in worker.builder.pages(service_id, result.lengths):
        result.pages += 1
        before = stored.pop(page.location_id, None)
        if before is None:
            new.append(page.row)
        elif before[0] != page.content_hash or not before[1]:
            changed.append(page.row)
        if len(new) >= COPY_BATCH_ROWS:  # put() blocks while the parent's queue is full
            worker.messages.put(copyrows.payload(new))
            result.sent += 1
            new = []
        if len(changed) >= COPY_BATCH_ROWS:
            result.staged += await _stage(worker, copyrows.payload(changed))
            changed = []
        if result.pages % COPY_BATCH_ROWS == 0:
            worker.messages.put(COPY_BATCH_ROWS)
    if new:
        worker.messages.put(copyrows.payload(new))
        result.sent += 1
    if changed:
        result.staged += await _stage(worker, copyrows.payload(changed))
    worker.messages.put(result.pages % COPY_BATCH_ROWS)
    gone = [(service_id, location_id) for location_id, (_, live) in stored.items() if live]
    if gone:
        await _stage(worker, copyrows.keys(gone), f"{worker.stage}_gone", GONE_COLUMNS)
        result.gone = len(gone)
    return result


async def _stage(
    worker: _Worker,
    payload: bytes,
    table: str | None = None,
    columns: tuple[str, ...] = copyrows.COLUMNS,
) -> int:
    # asyncpg does not notice a dead connection until its input is exhausted: check first.
    if worker.connection.is_closed():
        raise ConnectionLost("the database connection closed during generate")
    status = await copyguard.guarded(
        worker.connection,
        worker.connection.copy_to_table(
            table or worker.stage,
            source=copyrows.source(payload),
            columns=list(columns),
            format="binary",
        ),
    )
    return int(status.rsplit(" ", 1)[-1])


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
