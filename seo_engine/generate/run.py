"""Generate a site's pages: render, compare and build them in worker processes (see
render_worker.py), COPY them into `pages` or a stage, and merge in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from pathlib import Path
from queue import Empty
from typing import TypeVar

import asyncpg
import numpy as np

from seo_engine.db import changes, copyguard, database
from seo_engine.db.database import Connection
from seo_engine.generate import copyrows, override_review, visibility
from seo_engine.generate.copyrows import COLUMNS
from seo_engine.generate.pagebuild import LengthReport
from seo_engine.generate.render_worker import (
    Message,
    WorkerFailure,
    build_family,
    compare_places,
    load_builder,
    render_family,
    start,
)
from seo_engine.ingest import sites
from seo_engine.settings import Settings

log = logging.getLogger(__name__)

GENERATE_LOCK_CLASS = 0x5E0E  # advisory lock (class, site id): one generate per site

# Held by a transaction that spans rendering and the merge: released by commit, rollback or
# a dead connection, and it works behind a transaction-mode pooler (a session lock does not).
TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1, $2)"
STAGE_TABLE = "generate_stage_{site_id}_{run}"
STAGE_PREFIX = "generate_stage_{site_id}_"
LEFTOVER_STAGES = "SELECT tablename FROM pg_tables WHERE tablename LIKE $1 || '%'"
CREATE_STAGE = """
DROP TABLE IF EXISTS {stage}, {stage}_gone, {stage}_builds;
CREATE UNLOGGED TABLE {stage} (
    site_id integer NOT NULL, service_id bigint NOT NULL, location_id bigint NOT NULL,
    path text NOT NULL, title text NOT NULL, meta_description text NOT NULL, h1 text NOT NULL,
    document bytea NOT NULL, quality_score real NOT NULL, indexable boolean NOT NULL,
    quality_flags integer NOT NULL, nearest_similarity real, nearest_location_id bigint,
    nearest_service_id bigint, content_hash bytea NOT NULL
) WITH (autovacuum_enabled = false);
CREATE UNLOGGED TABLE {stage}_gone (service_id bigint NOT NULL, location_id bigint NOT NULL)
    WITH (autovacuum_enabled = false);
CREATE UNLOGGED TABLE {stage}_builds (LIKE page_builds) WITH (autovacuum_enabled = false)
"""
DROP_STAGE = "DROP TABLE IF EXISTS {stage}, {stage}_gone, {stage}_builds"
SELECT_SERVICE_IDS = "SELECT id, slug FROM services WHERE site_id = $1 ORDER BY id"
COUNT_LOCATIONS = "SELECT count(*) FROM locations WHERE site_id = $1 AND population >= $2"
# now() is the merge transaction's start: the updated_at of every page it writes, which the
# workers put into the documents they build.
TRANSACTION_TIME = "SELECT now()"
HAS_OVERRIDES = "SELECT EXISTS (SELECT 1 FROM overrides WHERE site_id = $1)"

# New pages are COPYed into `pages` while rendering goes on (INSERT_NEW); the stage holds
# the rest: pages whose content changed, and new pages whose path was taken when they were
# copied (they are inserted after the updates, which may free their path). The merge.
# `changed` holds existing pages whose content differs (or that come back from a
# tombstone); only those rows are written, so an unchanged re-run writes nothing.
MERGE_CHANGED = """
CREATE TEMP TABLE changed ON COMMIT DROP AS
SELECT p.id, p.path AS old_path, p.deleted_at IS NULL AS was_live, s.*
FROM {stage} s JOIN pages p
  ON p.site_id = $1 AND p.service_id = s.service_id AND p.location_id = s.location_id
WHERE p.content_hash <> s.content_hash OR p.deleted_at IS NOT NULL
"""
# A path that becomes live again is no longer the source of a redirect.
MERGE_RECLAIMED = """
DELETE FROM redirects r USING changed c WHERE r.site_id = $1 AND r.from_path = c.path
"""
MERGE_REDIRECTS = """
INSERT INTO redirects (site_id, from_path, to_path)
SELECT $1, old_path, path FROM changed WHERE was_live AND old_path <> path
ON CONFLICT (site_id, from_path) DO UPDATE SET to_path = excluded.to_path, created_at = now()
"""
MERGE_REDIRECT_CHAINS = """
UPDATE redirects r SET to_path = c.path
FROM changed c
WHERE r.site_id = $1 AND r.to_path = c.old_path AND c.was_live AND c.old_path <> c.path
"""
MERGE_UPDATE = """
UPDATE pages p SET
    path = c.path, title = c.title, meta_description = c.meta_description, h1 = c.h1,
    document = c.document, quality_score = c.quality_score, indexable = c.indexable,
    quality_flags = c.quality_flags, nearest_similarity = c.nearest_similarity,
    nearest_location_id = c.nearest_location_id, nearest_service_id = c.nearest_service_id,
    content_hash = c.content_hash,
    updated_at = now(), deleted_at = NULL
FROM changed c WHERE p.id = c.id
"""
MERGE_INSERT = """
INSERT INTO pages (site_id, service_id, location_id, path, title, meta_description, h1,
                   document, quality_score, indexable, quality_flags, nearest_similarity,
                   nearest_location_id, nearest_service_id, content_hash)
SELECT $1, s.service_id, s.location_id, s.path, s.title, s.meta_description, s.h1,
       s.document, s.quality_score, s.indexable, s.quality_flags, s.nearest_similarity,
       s.nearest_location_id, s.nearest_service_id, s.content_hash
FROM {stage} s
WHERE NOT EXISTS (
    SELECT 1 FROM pages p
    WHERE p.site_id = $1 AND p.service_id = s.service_id AND p.location_id = s.location_id
)
"""
# Live pages that the workers no longer render (a location fell below min_population).
# Pages of removed services and locations were tombstoned by `seed --prune` already.
MERGE_TOMBSTONES = """
UPDATE pages p SET deleted_at = now(), updated_at = now()
FROM {stage}_gone g
WHERE p.site_id = $1 AND p.service_id = g.service_id AND p.location_id = g.location_id
  AND p.deleted_at IS NULL
"""
# Services with built pages, by a skip scan of the primary key (one probe per service).
BUILT_SERVICES = """
WITH RECURSIVE built AS (
    (SELECT service_id FROM page_builds WHERE site_id = $1 ORDER BY service_id LIMIT 1)
    UNION ALL
    SELECT (SELECT b.service_id FROM page_builds b
            WHERE b.site_id = $1 AND b.service_id > built.service_id
            ORDER BY b.service_id LIMIT 1)
    FROM built WHERE built.service_id IS NOT NULL
)
SELECT service_id FROM built WHERE service_id IS NOT NULL
"""
SELECT_LOCATION_IDS = "SELECT id FROM locations WHERE site_id = $1 AND population >= $2 ORDER BY id"
DELETE_REMOVED_BUILDS = """
DELETE FROM page_builds WHERE site_id = $1 AND service_id = ANY($2::bigint[])
"""
# What pages judged again were built from and compared with; pages gone have no build.
MERGE_BUILDS = """
UPDATE page_builds b SET
    inputs = s.inputs, signature = s.signature, title_key = s.title_key,
    description_key = s.description_key, family_location_id = s.family_location_id,
    family_equal = s.family_equal, place_service_id = s.place_service_id,
    place_equal = s.place_equal
FROM {stage}_builds s
WHERE b.site_id = $1 AND b.service_id = s.service_id AND b.location_id = s.location_id
"""
MERGE_GONE_BUILDS = """
DELETE FROM page_builds b USING {stage}_gone g
WHERE b.site_id = $1 AND b.service_id = g.service_id AND b.location_id = g.location_id
"""
# Newly inserted pages may reclaim a redirected path too.
MERGE_LIVE_REDIRECTS = """
DELETE FROM redirects r USING pages p
WHERE r.site_id = $1 AND p.site_id = $1 AND p.path = r.from_path AND p.deleted_at IS NULL
"""
PATH_COLLISIONS = """
SELECT a.path, sa.key AS service_a, la.key AS location_a, sb.key AS service_b, lb.key AS location_b
FROM (
    SELECT path, service_id, location_id, true AS staged FROM {stage}
    UNION ALL
    SELECT path, service_id, location_id, false FROM pages
    WHERE site_id = $1 AND deleted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM {stage} s
                      WHERE s.service_id = pages.service_id AND s.location_id = pages.location_id)
) a
JOIN {stage} b ON b.path = a.path
  AND (NOT a.staged OR (b.service_id, b.location_id) < (a.service_id, a.location_id))
LEFT JOIN services sa ON sa.id = a.service_id LEFT JOIN locations la ON la.id = a.location_id
LEFT JOIN services sb ON sb.id = b.service_id LEFT JOIN locations lb ON lb.id = b.location_id
LIMIT 5
"""


class GenerateError(Exception):
    """Generation stopped; the stored page set is unchanged."""


class GenerateBusy(GenerateError):
    """Another generate of the same site holds the lock."""


@dataclass
class GenerateReport:
    site: str
    pages: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    redirects: int = 0
    lengths: LengthReport = field(default_factory=LengthReport)
    render_seconds: float = 0.0  # step 1: rendering what changed
    compare_seconds: float = 0.0  # step 2: comparing places
    build_seconds: float = 0.0  # step 3: judging and building, with the inserts
    merge_seconds: float = 0.0
    families: int = 0  # services selected
    rendered: int = 0  # of their pages, rendered because their inputs changed (or --force)
    review: override_review.Review | None = None  # overridden fields checked, if any


@dataclass(frozen=True)
class GenerateOptions:
    site: str | None = None
    services: tuple[str, ...] = ()
    workers: int | None = None
    force: bool = False  # render every selected page, even one whose inputs are unchanged


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _rowcount(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


QUEUED_BATCHES = 8  # COPY payloads in flight between workers and the merger (2 MB each)
POLL_SECONDS = 0.01
_NO_LOCATIONS = np.zeros(0, dtype=np.int64)
PLACE_BLOCK = 1000  # locations compared at once by one worker (step 2: ~30 MB)
T = TypeVar("T")


class _Workers:
    """The render workers of one run, and the parent's side of their messages: progress
    counts, and new rows, which it COPYs into `pages` and `page_builds` inside the merge's
    transaction while the workers go on."""

    def __init__(
        self, merger: Connection, stage: str, pool: ProcessPoolExecutor, messages: Queue[Message]
    ) -> None:
        self.merger = merger
        self.stage = stage
        self.pool = pool
        self.messages = messages
        self.inserted = 0  # new pages COPYed into `pages` (not staged: their path was taken)
        self.received = 0  # messages received (COPY payloads and progress counts)
        self.others = set(multiprocessing.active_children())  # not the pool's: never ours

    async def run(
        self, tasks: Sequence[Callable[[], T]], progress: Callable[[int], None] | None = None
    ) -> list[T]:
        """Run tasks on the workers and return their results in order, once every payload
        they sent (Scan.sent, ServiceResult.sent) has been received: a progress count that
        came late would otherwise be counted by the next run's bar."""
        futures: list[Future[T]] = [self.pool.submit(task) for task in tasks]
        expected = self.received
        while True:
            failed = next((f for f in futures if f.done() and f.exception()), None)
            if failed is not None:
                raise _explain_failure(failed.exception())
            if all(f.done() for f in futures):
                sent = sum(getattr(f.result(), "sent", 0) for f in futures)
                if self.received == expected + sent:
                    return [future.result() for future in futures]
            try:
                message = self.messages.get_nowait()
            except Empty:
                await asyncio.sleep(POLL_SECONDS)
                continue
            self.received += 1
            if isinstance(message, tuple):
                table, payload = message
                if table == "pages":
                    self.inserted += await _insert_new(self.merger, self.stage, payload)
                else:
                    await _copy(self.merger, table, payload, copyrows.BUILD_COLUMNS)
            elif progress is not None:
                progress(message)

    def stop(self) -> None:
        """Failure or Ctrl-C: stop the workers now rather than after their current task.
        The pool has no public way to do that before Python 3.14 (terminate_workers), but
        its workers are this process's multiprocessing children since `others`."""
        for process in multiprocessing.active_children():
            if process not in self.others:
                process.terminate()


async def _insert_new(merger: Connection, stage: str, payload: bytes) -> int:
    """COPY a batch of new pages into `pages`; if a path is taken, stage the batch instead.

    Returns the number of pages inserted now (0 when staged for the merge, which inserts
    them after the updates and names any real collision).
    """
    try:
        async with merger.transaction():  # a savepoint: a failed batch undoes only itself
            status = await _copy(merger, "pages", payload)
        return _rowcount(status)
    except asyncpg.UniqueViolationError:
        await _copy(merger, stage, payload)
        return 0


async def _copy(
    merger: Connection, table: str, payload: bytes, columns: tuple[str, ...] = COLUMNS
) -> str:
    copy = merger.copy_to_table(
        table, source=copyrows.source(payload), columns=list(columns), format="binary"
    )
    return await copyguard.guarded(merger, copy)  # a cut connection fails it, not hangs it


UNCHANGED = "nothing was merged: the stored page set is unchanged"


def _explain_failure(error: BaseException | None) -> BaseException:
    """What a failed render task means for the user."""
    if isinstance(error, WorkerFailure):
        if error.lost_connection:
            return database.DatabaseUnavailable(
                f"lost the database connection while rendering ({error.message}); {UNCHANGED}"
            )
        return GenerateError(f"rendering failed: {error.message}; {UNCHANGED}")
    if isinstance(error, BrokenProcessPool):
        return GenerateError(f"a render worker died; {UNCHANGED}")
    return error if error is not None else GenerateError(UNCHANGED)


async def _merge(connection: Connection, site: sites.Site, stage: str) -> tuple[int, int, int, int]:
    """Apply the stage to pages (inside the caller's transaction).

    Returns inserted, updated, removed and moved (redirected) counts.
    """
    await connection.execute(f"ANALYZE {stage}")
    await connection.execute(MERGE_CHANGED.format(stage=stage), site.id)
    await connection.execute(MERGE_RECLAIMED, site.id)
    await connection.execute(MERGE_REDIRECT_CHAINS, site.id)
    moved = _rowcount(await connection.execute(MERGE_REDIRECTS, site.id))
    removed = _rowcount(await connection.execute(MERGE_TOMBSTONES.format(stage=stage), site.id))
    updated = _rowcount(await connection.execute(MERGE_UPDATE))
    inserted = _rowcount(await connection.execute(MERGE_INSERT.format(stage=stage), site.id))
    await connection.execute(MERGE_BUILDS.format(stage=stage), site.id)
    await connection.execute(MERGE_GONE_BUILDS.format(stage=stage), site.id)
    return inserted, updated, removed, moved


async def _explain_collision(connection: Connection, site: sites.Site, stage: str) -> str:
    rows = await connection.fetch(PATH_COLLISIONS.format(stage=stage), site.id)
    if not rows:
        return "two pages would share one path"
    described = [
        f"{row['path']} (service {row['service_a']} + location {row['location_a']} and "
        f"service {row['service_b']} + location {row['location_b']})"
        for row in rows
    ]
    return "path collision: " + "; ".join(described)


async def generate(
    settings: Settings,
    options: GenerateOptions,
    progress_start: Callable[[int], Callable[[int], None]],
) -> GenerateReport:
    """Build the selected pages of a site; the stored page set changes only at the merge.

    One connection holds the transaction that owns the site's lock and later merges; a
    second one manages the staging table, which the render workers must see committed,
    and drops it once that transaction has ended (the merge read it, so it is locked).
    """
    dsn = await asyncio.to_thread(database.resolve_dsn, settings)
    merger = await database.connect(dsn, settings, bulk=True)
    stager: Connection | None = None
    stage: str | None = None
    transaction = merger.transaction()
    try:
        site = await sites.find(merger, options.site)
        await transaction.start()
        if not await merger.fetchval(TRY_LOCK, GENERATE_LOCK_CLASS, site.id):
            raise GenerateBusy(f"another generate of site '{site.slug}' is running; try later")
        # What is live stays as it is until this run commits; new pages start as the site says.
        await merger.fetchval(visibility.HOLD_PUBLISH_LOCK, visibility.PUBLISH_LOCK_CLASS, site.id)
        await merger.fetchval(visibility.NEW_PAGE_STATE, site.publishing.new_pages)
        stager = await database.connect(dsn, settings, bulk=True)
        stage = await _create_stage(stager, site)
        report = await _generate_locked(merger, stage, dsn, settings, site, options, progress_start)
        report.review = await _review_overrides(merger, site, report.rendered > 0)
        await transaction.commit()
        if report.inserted or report.updated or report.removed:
            # Planning against the table as it was before a bulk load can turn one-row
            # lookups into scans.
            await database.refresh_statistics(merger, "pages")
        return report
    finally:
        if not merger.is_closed():
            with contextlib.suppress(*database.ANY_FAILURE):
                await transaction.rollback()  # a no-op after a commit
            await merger.close(timeout=5)
        if stager is not None and not stager.is_closed():
            if stage is not None:
                with contextlib.suppress(*database.ANY_FAILURE):
                    await stager.execute(DROP_STAGE.format(stage=stage))
            await stager.close(timeout=5)


async def _review_overrides(
    merger: Connection, site: sites.Site, rendered: bool
) -> override_review.Review | None:
    """Refresh what the templates write under the site's overrides (only rendered pages can
    have new text there); None when the site has no overrides."""
    if not await merger.fetchval(HAS_OVERRIDES, site.id):
        await merger.execute(override_review.CLEAR, site.id)
        return None
    if not rendered:
        return await override_review.counted(merger, site)
    builder = await load_builder(merger, site.slug, await merger.fetchval(TRANSACTION_TIME))
    return await override_review.refresh(merger, builder)


async def _create_stage(stager: Connection, site: sites.Site) -> str:
    """A fresh staging table; the caller holds the site's lock, so leftovers can go."""
    prefix = STAGE_PREFIX.format(site_id=site.id)
    for row in await stager.fetch(LEFTOVER_STAGES, prefix.replace("_", r"\_")):
        await stager.execute(DROP_STAGE.format(stage=row["tablename"]))
    stage = STAGE_TABLE.format(site_id=site.id, run=secrets.token_hex(4))
    await stager.execute(CREATE_STAGE.format(stage=stage))
    return stage


async def _generate_locked(
    merger: Connection,
    stage: str,
    dsn: str,
    settings: Settings,
    site: sites.Site,
    options: GenerateOptions,
    progress_start: Callable[[int], Callable[[int], None]],
) -> GenerateReport:
    report = GenerateReport(site=site.slug)
    services = {row["slug"]: row["id"] for row in await merger.fetch(SELECT_SERVICE_IDS, site.id)}
    unknown = [slug for slug in options.services if slug not in services]
    if unknown:
        raise GenerateError(f"unknown service(s) for site '{site.slug}': {', '.join(unknown)}")
    selected = [services[slug] for slug in options.services] or list(services.values())
    report.families = len(selected)
    started = time.monotonic()
    if selected:  # workers run even with no locations: they stage the pages that are gone
        with tempfile.TemporaryDirectory(prefix="seo-engine-generate-") as folder:
            workers = await _start_workers(
                merger, stage, dsn, settings, site, Path(folder), options.workers, len(services)
            )
            try:
                await _steps(
                    workers,
                    merger,
                    site,
                    list(services.values()),
                    selected,
                    options.force,
                    report,
                    progress_start,
                )
            except BaseException:
                workers.stop()
                raise
            finally:
                workers.pool.shutdown(wait=True, cancel_futures=True)
                workers.messages.close()
    started = time.monotonic()
    try:
        async with merger.transaction():  # a savepoint: a collision can be explained
            counts = await _merge(merger, site, stage)
            if report.inserted or counts[0]:  # new pages may take back a redirected path
                await merger.execute(MERGE_LIVE_REDIRECTS, site.id)
                await merger.execute(visibility.DRIP_CLOCK, site.id, None)  # may be queued
            if report.inserted or any(counts):  # API workers drop what they cached, at commit
                await changes.notify(merger)
    except asyncpg.UniqueViolationError:
        raise GenerateError(await _explain_collision(merger, site, stage)) from None
    report.merge_seconds = time.monotonic() - started
    log.info(
        "phase done: merge", extra={"phase": "merge", "seconds": round(report.merge_seconds, 3)}
    )
    inserted, report.updated, report.removed, report.redirects = counts
    report.inserted += inserted
    report.unchanged = max(0, report.pages - report.inserted - report.updated)
    return report


async def _start_workers(
    merger: Connection,
    stage: str,
    dsn: str,
    settings: Settings,
    site: sites.Site,
    folder: Path,
    workers: int | None,
    services: int,
) -> _Workers:
    context = multiprocessing.get_context("spawn")
    messages: Queue[Message] = context.Queue(QUEUED_BATCHES)
    others = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(
        max_workers=max(1, min(workers or default_workers(), services)),
        mp_context=context,
        initializer=start,
        initargs=(
            dsn,
            settings,
            site.slug,
            await merger.fetchval(TRANSACTION_TIME),
            stage,
            folder,
            messages,
        ),
    )
    running = _Workers(merger, stage, pool, messages)
    running.others = others
    return running


async def _steps(
    workers: _Workers,
    merger: Connection,
    site: sites.Site,
    services: list[int],
    selected: list[int],
    force: bool,
    report: GenerateReport,
    progress_start: Callable[[int], Callable[[int], None]],
) -> None:
    """Render what changed, compare places where pages changed, build what needs it.

    `services` are all the site's services; `selected` the ones being generated.
    """
    started = time.monotonic()
    locations = await merger.fetchval(COUNT_LOCATIONS, site.id, site.options.min_population)
    scans = await workers.run(
        [functools.partial(render_family, service, force) for service in selected],
        progress_start(len(selected) * locations),
    )
    for scan in scans:
        report.pages += scan.pages
        report.rendered += scan.rendered
        report.lengths.add(scan.lengths)
    report.render_seconds = time.monotonic() - started
    log.info(
        "phase done: render", extra={"phase": "render", "seconds": round(report.render_seconds, 3)}
    )
    started = time.monotonic()
    changed = np.unique(np.concatenate([_NO_LOCATIONS, *(scan.changed for scan in scans)]))
    changed_ids: list[int] = changed.tolist()
    built = {row["service_id"] for row in await merger.fetch(BUILT_SERVICES, site.id)}
    removed = sorted(built - set(services))
    if removed:  # every location lost a page: each is compared again, and the rows go
        await merger.execute(DELETE_REMOVED_BUILDS, site.id, removed)
        rows = await merger.fetch(SELECT_LOCATION_IDS, site.id, site.options.min_population)
        changed_ids = [row["id"] for row in rows]
    placed: set[int] = set()
    if site.quality.gate and changed_ids:
        blocks = [
            changed_ids[at : at + PLACE_BLOCK] for at in range(0, len(changed_ids), PLACE_BLOCK)
        ]
        comparisons = [
            functools.partial(compare_places, number, block, selected)
            for number, block in enumerate(blocks)
        ]
        for written in await workers.run(comparisons):
            placed.update(written)
    report.compare_seconds = time.monotonic() - started
    log.info(
        "phase done: compare",
        extra={"phase": "compare", "seconds": round(report.compare_seconds, 3)},
    )
    started = time.monotonic()
    touched = {scan.service_id: scan for scan in scans if scan.rendered or len(scan.changed)}
    chosen = set(selected)
    tasks = [
        functools.partial(
            build_family,
            service,
            service in chosen,
            service in touched and touched[service].compared,
        )
        for service in sorted(set(touched) | placed)
    ]
    results = await workers.run(tasks, progress_start(report.pages)) if tasks else []
    for result in results:
        report.lengths.add(result.lengths)
        if result.service_id not in chosen:
            report.pages += result.pages
    report.inserted = workers.inserted
    report.build_seconds = time.monotonic() - started
    log.info(
        "phase done: build and insert",
        extra={"phase": "build and insert", "seconds": round(report.build_seconds, 3)},
    )
