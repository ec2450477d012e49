"""Worker processes of `generate`: render pages, compare them, build and COPY their rows.

A generate has three steps, each spread over the workers (`run.py` orders them):

1. `render_family(service)`: render the pages of one service whose inputs changed since
   they were built (`page_builds`), read their words and sign them; texts, signals and
   signatures go to the run's spool.
2. `compare_places(locations)`: where a page changed, compare the pages of every service
   in that location (the page's place).
3. `build_family(service)`: compare the service's pages with each other (its family) if
   any of them changed, judge every page whose text or siblings changed, and build its
   document and row: new pages go to the parent, which COPYs them into `pages`; changed
   ones to the stage, for the merge; the rest are left as stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import io
import os
import signal
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import asyncpg
import numpy as np
import numpy.typing as npt

from seo_engine.db import copyguard, database
from seo_engine.db.database import Connection
from seo_engine.generate import copyrows, quality, spool, visibility
from seo_engine.generate.pagebuild import (
    Dimension,
    LengthReport,
    Near,
    Neighbours,
    PageBuilder,
    Rendered,
    location_context,
    service_context,
)
from seo_engine.ingest import overrides, sites
from seo_engine.ingest.content import ContentError
from seo_engine.settings import Settings

COPY_BATCH_ROWS = 2000  # pages a progress message counts
COPY_BATCH_BYTES = 2 * 1024 * 1024  # rows sent or staged at once (~330 pages of 6 KB)
RENDER_BATCH = 512  # pages whose signatures are computed at once
GONE_COLUMNS = ("service_id", "location_id")
PR_SET_PDEATHSIG = 1
NO_ROW = -1
_NONE = np.zeros(0, dtype=np.int64)
T = TypeVar("T")

SELECT_SERVICES = """
SELECT id, key, slug, name, category, description, attributes::text AS attributes
FROM services WHERE site_id = $1 ORDER BY id
"""
SELECT_LOCATIONS = """
SELECT id, key, slug, name, region_name, region_code, country_code, population,
       latitude, longitude, timezone, attributes::text AS attributes
FROM locations WHERE site_id = $1 AND population >= $2 ORDER BY id
"""
# Read by binary COPY into three arrays: 270,000 rows as Python objects would leave a
# worker's memory tens of MB larger for good.
COPY_NEIGHBOURS = """
SELECT n.location_id, n.neighbour_id, n.distance_km
FROM location_neighbours n JOIN locations l ON l.id = n.location_id
WHERE l.site_id = $1 ORDER BY n.location_id, n.rank
"""
NEIGHBOUR_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("location_size", ">i4"),
        ("location", ">i8"),
        ("neighbour_size", ">i4"),
        ("neighbour", ">i8"),
        ("km_size", ">i4"),
        ("km", ">f4"),
    ]
)
# What is stored for one service before this generate: the transaction that will merge
# the results has not written anything these workers could see.
# $3: only these locations (NULL: all of them).
SELECT_STORED = """
SELECT location_id, content_hash, deleted_at IS NULL AS live
FROM pages
WHERE site_id = $1 AND service_id = $2 AND ($3::bigint[] IS NULL OR location_id = ANY($3))
"""
SELECT_BUILT = """
SELECT location_id, inputs, title_key, description_key
FROM page_builds WHERE site_id = $1 AND service_id = $2
"""
SELECT_SIGNATURES = """
SELECT location_id, signature
FROM page_builds WHERE site_id = $1 AND service_id = $2 AND location_id = ANY($3::bigint[])
"""
SELECT_BUILD_STATE = """
SELECT location_id, inputs, title_key, description_key, family_location_id, family_equal,
       place_service_id, place_equal
FROM page_builds WHERE site_id = $1 AND service_id = $2
"""
SELECT_BUILDS = """
SELECT location_id, inputs, signature, title_key, description_key, family_location_id,
       family_equal, place_service_id, place_equal
FROM page_builds WHERE site_id = $1 AND service_id = $2
"""
# By the primary key, every service with every location: one index, which COPY maintains.
SELECT_PLACES = """
SELECT service_id, location_id, signature, coalesce(place_service_id, -1) AS place
FROM page_builds
WHERE site_id = $1 AND service_id = ANY($2::bigint[]) AND location_id = ANY($3::bigint[])
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
class Scan:
    """What rendering one service found (step 1)."""

    service_id: int
    pages: int  # the service's pages in this run
    rendered: int  # of them, rendered because their inputs changed (or --force)
    # locations where its page changed for its siblings (or went); an array, not a list:
    # the parent holds every service's at once (4 million ints as a list: 150 MB)
    changed: npt.NDArray[np.int64]
    compared: bool  # the family changed for the gate: its pages are compared again
    lengths: LengthReport
    sent: int = 0  # progress messages sent to the parent


@dataclass
class ServiceResult:
    """What building one service did (step 3)."""

    service_id: int
    pages: int  # judged and compared with what is stored
    sent: int = 0  # messages sent to the parent: COPY payloads and the progress count
    staged: int = 0
    gone: int = 0
    lengths: LengthReport = field(default_factory=LengthReport)


# Messages to the parent: a count of pages done, or (table, COPY payload) of new rows.
Message = int | tuple[str, bytes]


@dataclass
class _Worker:
    loop: asyncio.AbstractEventLoop
    connection: Connection
    builder: PageBuilder
    stage: str
    folder: Path
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
    neighbours = await _neighbours(connection, site)
    edits = await overrides.load(connection, site.id)
    live = await visibility.load(connection, site)
    return PageBuilder(site, services, locations, neighbours, changed_at, edits, live)


async def _neighbours(connection: Connection, site: sites.Site) -> Neighbours:
    stream = io.BytesIO()
    await connection.copy_from_query(COPY_NEIGHBOURS, site.id, output=stream, format="binary")
    data = stream.getbuffer()
    header = len(copyrows.HEADER)
    rows = np.frombuffer(data[header : len(data) - len(copyrows.TRAILER)], dtype=NEIGHBOUR_ROW)
    return Neighbours(rows["location"], rows["neighbour"], rows["km"])


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
    folder: Path,
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
    _worker = _Worker(loop, connection, builder, stage, folder, messages)
    # The builder (~120 MB of contexts at 34,000 locations) lives as long as the worker:
    # the collector need not walk it again at every full collection.
    gc.freeze()


def _signature_of(data: bytes) -> quality.Signature:
    return np.frombuffer(data, dtype="<u2").astype(np.uint16)


# --- step 1: render ---


async def _render_family(worker: _Worker, service_id: int, force: bool) -> Scan:
    builder = worker.builder
    service = builder.services[service_id]
    stored = {
        row["location_id"]: _Built(bytes(row["inputs"]), row["title_key"], row["description_key"])
        for row in await worker.connection.fetch(SELECT_BUILT, builder.site.id, service_id)
    }
    scan = Scan(service_id, len(builder.locations), 0, _NONE, False, LengthReport())
    writer = spool.FamilyWriter(worker.folder, service_id)
    batch: list[tuple[Dimension, bytes, _Built | None]] = []
    changed: list[int] = []
    checked = 0
    for location in builder.locations:
        inputs = builder.inputs(service, location)
        before = stored.pop(location.id, None)
        checked += 1
        if checked % COPY_BATCH_ROWS == 0:
            worker.messages.put(COPY_BATCH_ROWS)
            scan.sent += 1
        if before is not None and before.inputs == inputs and not force:
            continue
        batch.append((location, inputs, before))
        if len(batch) == RENDER_BATCH:
            await _write_block(worker, writer, service, batch, scan, changed)
            batch = []
    if batch:
        await _write_block(worker, writer, service, batch, scan, changed)
    writer.close()
    worker.messages.put(checked % COPY_BATCH_ROWS)
    scan.sent += 1
    if stored:  # built before, but no page this run: gone
        changed.extend(stored)
        scan.compared = True
    scan.changed = np.array(changed, dtype=np.int64)
    return scan


class _Built(NamedTuple):
    """What page_builds holds of a page that rendering compares with (its signature is
    read only for the pages rendered again)."""

    inputs: bytes
    title_key: int
    description_key: int


async def _write_block(
    worker: _Worker,
    writer: spool.FamilyWriter,
    service: Dimension,
    batch: list[tuple[Dimension, bytes, _Built | None]],
    scan: Scan,
    changed: list[int],
) -> None:
    """Render a batch of pages, spool them, and note which changed for their siblings."""
    builder = worker.builder
    rendered, signed = builder.render_batch(
        [(service, location) for location, _, _ in batch], scan.lengths
    )
    signatures = (
        signed
        if signed is not None  # else the gate is off: nothing is compared
        else np.zeros((len(batch), quality.PERMUTATIONS), dtype=np.uint16)
    )
    again = [location.id for location, _, before in batch if before is not None]
    query = (SELECT_SIGNATURES, builder.site.id, scan.service_id, again)
    before_signatures = {
        row["location_id"]: bytes(row["signature"])
        for row in (await worker.connection.fetch(*query) if again else [])
    }
    for (location, _, before), page, signature in zip(batch, rendered, signatures, strict=True):
        signals = page.signals
        if (
            before is None
            or not builder.scored
            or before_signatures.get(location.id) != signature.astype("<u2").tobytes()
        ):
            changed.append(location.id)
            scan.compared = True
        elif (before.title_key, before.description_key) != (
            signals.title_key,
            signals.description_key,
        ):
            scan.compared = True
    writer.add_block(
        [location.id for location, _, _ in batch],
        [inputs for _, inputs, _ in batch],
        [page.texts for page in rendered],
        [page.signals for page in rendered],
        signatures,
    )
    scan.rendered += len(batch)


def render_family(service_id: int, force: bool) -> Scan:
    """Step 1 for one service (runs in a worker process)."""
    return _run(_render_family(_started(), service_id, force))


# --- step 2: compare places ---


async def _compare_places(
    worker: _Worker, block: int, location_ids: list[int], spooled: list[int]
) -> list[int]:
    """Compare the pages of every service in these locations; write each service's results
    to the spool (spool.write_places); return the services that have some."""
    builder = worker.builder
    wanted = np.array(sorted(i for i in location_ids if i in builder.location_by_id), np.int64)
    rows = await worker.connection.fetch(
        SELECT_PLACES, builder.site.id, list(builder.services), wanted.tolist()
    )
    stored = np.array(
        [(row["service_id"], row["location_id"], row["place"]) for row in rows], dtype=np.int64
    ).reshape(-1, 3)
    signatures = np.frombuffer(b"".join(row["signature"] for row in rows), dtype="<u2")
    del rows
    parts = [(stored[:, 0], stored[:, 1], signatures.reshape(-1, quality.PERMUTATIONS), 0)]
    for service_id in spooled:  # rendered this run: newer than what is stored
        family = spool.read_family(worker.folder, service_id)
        if not len(family.locations):
            continue
        at = np.minimum(np.searchsorted(family.locations, wanted), len(family.locations) - 1)
        hit = np.flatnonzero(family.locations[at] == wanted)
        parts.append(
            (
                np.full(len(hit), service_id, dtype=np.int64),
                wanted[hit],
                np.asarray(family.signatures[at[hit]]),
                1,
            )
        )
    services = np.concatenate([part[0] for part in parts])
    locations = np.concatenate([part[1] for part in parts])
    matrix = np.concatenate([part[2] for part in parts]).astype(np.uint16)
    newer = np.concatenate([np.full(len(part[0]), part[3]) for part in parts])
    del parts
    # Pages of this run's services and locations only; of two rows of a page, the newer.
    live = np.isin(services, list(builder.services)) & np.isin(locations, wanted)
    order = np.lexsort((newer, locations, services))
    order = order[live[order]]
    if not len(order):
        return []
    keep = np.r_[
        (services[order][1:] != services[order][:-1])
        | (locations[order][1:] != locations[order][:-1]),
        True,
    ]
    order = order[keep]
    services, locations, matrix = services[order], locations[order], matrix[order]
    rows_found, equal = quality.nearest(matrix, locations)
    # Each page's previous nearest (the stored one), as a row: pages are sorted by
    # (service, location), so a page's key is findable by binary search.
    keys = _pair_keys(services, locations)
    previous = np.full(len(keys), -1, dtype=np.int64)
    if len(stored):
        own = _pair_keys(stored[:, 0], stored[:, 1])
        mine = np.minimum(np.searchsorted(keys, own), len(keys) - 1)
        theirs = _pair_keys(stored[:, 2], stored[:, 1])
        at = np.minimum(np.searchsorted(keys, theirs), len(keys) - 1)
        known = (stored[:, 2] >= 0) & (keys[mine] == own) & (keys[at] == theirs)
        previous[mine[known]] = at[known]
    rows_found, equal = quality.keep_previous(matrix, rows_found, equal, previous)
    nearest = np.where(rows_found >= 0, services[rows_found], NO_ROW)
    return spool.write_places(worker.folder, block, services, locations, nearest, equal)


def _pair_keys(
    services: npt.NDArray[np.int64], locations: npt.NDArray[np.int64]
) -> npt.NDArray[np.uint64]:
    """(service, location) as one sortable 64-bit key (ids below 2^32)."""
    return (services.astype(np.uint64) << np.uint64(32)) | locations.astype(np.uint64)


def compare_places(block: int, location_ids: list[int], spooled: list[int]) -> list[int]:
    """Step 2 for some locations (runs in a worker process)."""
    return _run(_compare_places(_started(), block, location_ids, spooled))


# --- step 3: build ---


@dataclass
class _Spooled:
    """A service's rendered pages as step 3 reads them: one conversion for all its rows."""

    signals: spool.Signals  # spool.SIGNALS columns
    inputs: bytes  # 16 bytes a row
    signatures: quality.Signature
    signature_bytes: bytes  # little-endian, PERMUTATIONS * 2 bytes a row

    @classmethod
    def read(cls, family: spool.Family) -> _Spooled:
        signatures = np.asarray(family.signatures, dtype=np.uint16)
        return cls(
            family.signals,
            family.inputs.tobytes(),
            signatures,
            signatures.astype("<u2").tobytes(),
        )

    def inputs_of(self, row: int) -> bytes:
        return self.inputs[16 * row : 16 * (row + 1)]

    def signature_of(self, row: int) -> bytes:
        size = 2 * quality.PERMUTATIONS
        return self.signature_bytes[size * row : size * (row + 1)]


@dataclass
class _Family:
    """One service's pages in this run, each with its latest signature and title keys."""

    members: list[Dimension]
    builds: dict[int, asyncpg.Record]  # location id -> what page_builds holds of it
    rendered: dict[int, int]  # location id -> its row in the spool
    spooled: _Spooled | None
    title_keys: list[int]
    description_keys: list[int]


async def _load_family(
    worker: _Worker, service_id: int, selected: bool, with_signatures: bool
) -> _Family:
    """The service's pages in this run: all its locations when it is being generated,
    else those built before."""
    builder = worker.builder
    query = SELECT_BUILDS if with_signatures else SELECT_BUILD_STATE
    rows = await worker.connection.fetch(query, builder.site.id, service_id)
    builds = {row["location_id"]: row for row in rows}
    spooled = None
    rendered: dict[int, int] = {}
    if spool.written(worker.folder, service_id):
        family = spool.read_family(worker.folder, service_id)
        spooled = _Spooled.read(family)
        rendered = {location: row for row, location in enumerate(family.locations.tolist())}
    members = [
        location
        for location in builder.locations
        if selected or location.id in builds or location.id in rendered
    ]
    title_keys: list[int] = []
    description_keys: list[int] = []
    for location in members:
        row = rendered.get(location.id)
        if row is not None and spooled is not None:
            title_keys.append(int(spooled.signals[row, spool.TITLE_KEY]))
            description_keys.append(int(spooled.signals[row, spool.DESCRIPTION_KEY]))
        else:
            title_keys.append(builds[location.id]["title_key"])
            description_keys.append(builds[location.id]["description_key"])
    return _Family(members, builds, rendered, spooled, title_keys, description_keys)


def _family_signatures(family: _Family) -> quality.Signature:
    signatures = np.empty((len(family.members), quality.PERMUTATIONS), dtype=np.uint16)
    for index, location in enumerate(family.members):
        row = family.rendered.get(location.id)
        if row is not None and family.spooled is not None:
            signatures[index] = family.spooled.signatures[row]
        else:
            signatures[index] = _signature_of(family.builds[location.id]["signature"])
    return signatures


async def _build_family(
    worker: _Worker, service_id: int, selected: bool, compared: bool
) -> ServiceResult:
    """Judge and build the pages of one service that need it.

    `compared`: the family changed for the gate (a page's signature or title keys, or a
    page came or went), so its pages are compared again; else each keeps the nearest
    sibling stored, and only its rendered pages and those whose place changed are looked at.
    """
    builder = worker.builder
    site_id = builder.site.id
    service = builder.services[service_id]
    places: dict[int, Near] = spool.read_places(worker.folder, service_id)
    family = await _load_family(worker, service_id, selected, compared and builder.scored)
    if not compared and any(
        build["family_location_id"] not in builder.location_by_id
        for build in family.builds.values()
        if build["family_location_id"] is not None
    ):  # a nearest sibling's location is gone (seed --prune, min_population)
        compared = True
        family = await _load_family(worker, service_id, selected, builder.scored)
    members, builds = family.members, family.builds
    if compared and builder.scored:
        matrix = _family_signatures(family)
        rows, equal = quality.nearest(matrix)
        position = {location.id: index for index, location in enumerate(members)}
        earlier = [_stored_family(builds.get(location.id))[0] for location in members]
        previous = np.array(
            [-1 if near is None else position.get(near, -1) for near in earlier], dtype=np.int64
        )
        rows, equal = quality.keep_previous(matrix, rows, equal, previous)
        near_family = [
            (members[row].id if row >= 0 else None, int(count))
            for row, count in zip(rows.tolist(), equal.tolist(), strict=True)
        ]
    else:
        near_family = [_stored_family(builds.get(location.id)) for location in members]
    titles, descriptions = Counter(family.title_keys), Counter(family.description_keys)
    old_titles = Counter(row["title_key"] for row in builds.values())
    old_descriptions = Counter(row["description_key"] for row in builds.values())
    wanted = [
        index
        for index, location in enumerate(members)
        if location.id in family.rendered
        or (build := builds.get(location.id)) is None
        or near_family[index] != _stored_family(build)
        or places.get(location.id, _stored_place(build)) != _stored_place(build)
        or titles[family.title_keys[index]] != old_titles[family.title_keys[index]]
        or descriptions[family.description_keys[index]]
        != old_descriptions[family.description_keys[index]]
    ]
    stored = {
        row["location_id"]: (bytes(row["content_hash"]), row["live"])
        for row in await worker.connection.fetch(
            SELECT_STORED,
            site_id,
            service_id,
            None if selected else [members[index].id for index in wanted],
        )
    }
    again = [members[i].id for i in wanted if members[i].id not in family.rendered]
    signatures = {
        row["location_id"]: bytes(row["signature"])
        for row in await worker.connection.fetch(SELECT_SIGNATURES, site_id, service_id, again)
    }
    texts = spool.read_texts(worker.folder, service_id) if family.spooled is not None else None
    output = _Output(worker)
    result = ServiceResult(service_id, len(members) if selected else len(wanted))
    for index in wanted:
        location = members[index]
        build = builds.get(location.id)
        row = family.rendered.get(location.id)
        if row is not None and family.spooled is not None and texts is not None:
            signals = quality.Signals(*family.spooled.signals[row].tolist())
            rendered = Rendered(next(texts), signals)
            inputs = family.spooled.inputs_of(row)
            signature = family.spooled.signature_of(row)
        else:  # the same text as stored, judged again: rendered again
            assert build is not None, "a page neither built nor rendered"
            rendered = builder.render(service, location, result.lengths)
            inputs, signature = bytes(build["inputs"]), signatures[location.id]
        in_family = near_family[index]
        in_place = places.get(location.id, _stored_place(build))
        title, description = family.title_keys[index], family.description_keys[index]
        page = builder.judged_row(
            service,
            location,
            rendered,
            in_family,
            in_place,
            titles[title],
            descriptions[description],
        )
        before = stored.get(location.id)
        if before is None:
            await output.add("pages", page.row)
        elif before[0] != page.content_hash or not before[1]:
            await output.add("stage", page.row)
        record = copyrows.Build(
            service_id,
            location.id,
            inputs,
            signature,
            title,
            description,
            *in_family,
            *in_place,
        )
        kind = "page_builds" if build is None else "stage_builds"
        await output.add(kind, copyrows.encode_build(site_id, record))
    await output.flush()
    worker.messages.put(result.pages if selected else 0)  # the build bar counts families
    result.sent, result.staged = output.sent + 1, output.staged  # + that progress message
    if selected:  # live pages this run no longer has (a location below min_population)
        gone = [
            (service_id, location_id)
            for location_id, (_, live) in stored.items()
            if live and location_id not in builder.location_by_id
        ]
        if gone:
            await _stage(worker, copyrows.keys(gone), f"{worker.stage}_gone", GONE_COLUMNS)
            result.gone = len(gone)
    return result


def _stored_family(build: asyncpg.Record | None) -> Near:
    if build is None:
        return (None, 0)
    return (build["family_location_id"], build["family_equal"])


def _stored_place(build: asyncpg.Record | None) -> Near:
    if build is None:
        return (None, 0)
    return (build["place_service_id"], build["place_equal"])


class _Output:
    """Batches of rows leaving a worker: new ones to the parent (which COPYs them inside
    its transaction), changed ones to the stage (merged at the end)."""

    TABLES = ("pages", "page_builds", "stage", "stage_builds")

    def __init__(self, worker: _Worker) -> None:
        self.worker = worker
        self.batches: dict[str, list[bytes]] = {kind: [] for kind in self.TABLES}
        self.sizes = dict.fromkeys(self.TABLES, 0)
        self.sent = 0
        self.staged = 0

    async def add(self, kind: str, row: bytes) -> None:
        self.batches[kind].append(row)
        self.sizes[kind] += len(row)
        if self.sizes[kind] >= COPY_BATCH_BYTES:
            await self._send(kind)

    async def _send(self, kind: str) -> None:
        rows = self.batches[kind]
        if not rows:
            return
        self.batches[kind] = []
        self.sizes[kind] = 0
        payload = copyrows.payload(rows)
        if kind in ("pages", "page_builds"):  # put() blocks while the parent's queue is full
            self.worker.messages.put((kind, payload))
            self.sent += 1
        elif kind == "stage":
            self.staged += await _stage(self.worker, payload)
        else:
            table = f"{self.worker.stage}_builds"
            await _stage(self.worker, payload, table, copyrows.BUILD_COLUMNS)

    async def flush(self) -> None:
        for kind in self.TABLES:
            await self._send(kind)


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


def build_family(service_id: int, selected: bool, compared: bool) -> ServiceResult:
    """Step 3 for one service (runs in a worker process)."""
    return _run(_build_family(_started(), service_id, selected, compared))


# --- every step ---


def _started() -> _Worker:
    if _failed_start is not None:
        raise _failed_start
    assert _worker is not None, "worker not started"
    return _worker


def _run(step: Coroutine[Any, Any, T]) -> T:
    assert _worker is not None
    try:
        return _worker.loop.run_until_complete(step)
    except ContentError:
        raise
    except Exception as error:  # asyncpg errors do not always survive pickling
        raise _failure(error) from None
    finally:
        _release_free_memory()


def _release_free_memory() -> None:
    """Give the pages malloc holds free back to the system after each task (glibc).

    A task frees most of what it allocated, but in the middle of the heap, between objects
    that live on: without this a worker's size only grows, task after task."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its allocator decides
        ctypes.CDLL(None).malloc_trim(0)
