"""The application factory and the lifespan that owns the database pool."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from seo_engine import __version__
from seo_engine.db import changes, database, replicas
from seo_engine.publish import indexnow, release
from seo_engine.serve import (
    answers,
    api,
    favicon,
    handlers,
    hotpath,
    metrics,
    observe,
    operations,
    sitemaps,
    surrogate,
    web,
)
from seo_engine.serve.compression import Compression
from seo_engine.serve.directory import SiteDirectory
from seo_engine.serve.limits import RequestLimits
from seo_engine.serve.lookups import PageLookups
from seo_engine.serve.pagecache import PageCache
from seo_engine.serve.validator_index import ValidatorIndex
from seo_engine.settings import Settings

log = logging.getLogger(__name__)
POOL_CLOSE_SECONDS = 5.0
MB = 1024 * 1024


class _App(FastAPI):
    """FastAPI with the hot paths in front of its whole middleware stack."""

    hot_paths = True

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        stack = hotpath.HotPaths(stack) if self.hot_paths else stack
        # Around everything: every request is counted once.
        return observe.Observe(stack, self.state.settings, self.state.request_stats)


def create_app(settings: Settings, *, hot_paths: bool = True) -> FastAPI:
    """Build the FastAPI app; the pool is created on startup and closed on shutdown.

    Without `hot_paths` every request goes through FastAPI's routes, which answer pages
    and documents through the same core (answers.py): the same answers, slower.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dsn = await asyncio.to_thread(database.resolve_dsn, settings)
        try:
            pool = await database.create_pool(dsn, settings)
        except database.DatabaseUnavailable as error:
            # Start anyway: /healthz answers, everything else is 503 until the database
            # is back, and nobody has to restart the service when it is.
            log.warning("%s; serving 503 until the database answers", error.reason)
            pool = await database.create_pool(dsn, settings, lazy=True)
        app.state.pool = pool
        reads: database.ReadSource = pool
        if settings.read_database_url is not None:
            app.state.replicas = await replicas.open_read_pools(pool, settings)
            reads = app.state.replicas
        app.state.reads = reads
        app.state.sites = SiteDirectory()
        app.state.lookups = PageLookups(reads, settings.acquire_timeout)
        app.state.export_slots = api.ExportSlots(settings.export_concurrency)
        app.state.shards = sitemaps.ShardCache()
        app.state.page_cache = PageCache(settings.page_cache_seconds, settings.page_cache_mb * MB)
        app.state.validators = ValidatorIndex(reads, settings)
        app.state.answers = answers.Resources(
            reads,
            settings.acquire_timeout,
            app.state.sites,
            app.state.lookups,
            app.state.page_cache,
            app.state.validators,
        )
        watchers: list[changes.Watcher] = [
            app.state.page_cache,
            app.state.validators,
            app.state.shards,
        ]
        tasks = []
        if isinstance(reads, replicas.ReadPools):
            reads.watch(*watchers)
            watchers.append(reads)
            tasks.append(asyncio.create_task(reads.keep_checking()))
        if settings.metrics:
            database.on_acquire = metrics.observe_acquire
            app.state.lookups.on_batch = metrics.LOOKUP_BATCH.observe
            app.state.metrics = metrics.Publisher(
                app.state.request_stats,
                pool,
                app.state.page_cache,
                app.state.validators,
                reads if isinstance(reads, replicas.ReadPools) else None,
            )
            tasks.append(asyncio.create_task(app.state.metrics.keep_publishing()))
        if settings.page_cache_seconds > 0:
            tasks.append(asyncio.create_task(changes.listen(dsn, settings, *watchers)))
        if settings.publish_interval > 0:  # scheduled and drip pages go live on their own
            release_round = None  # after each round, the CDN purge of what it published
            if settings.purge is not None:
                release_round = surrogate.releasing_with_purges(
                    settings.purge, settings.purge_max_keys
                )
            clock = release.keep_releasing(pool, settings.publish_interval, release_round)
            tasks.append(asyncio.create_task(clock))
        if settings.indexnow_interval > 0:  # the URLs that changed go to search engines
            tasks.append(
                asyncio.create_task(indexnow.keep_pushing(pool, settings.indexnow_interval))
            )
        log.info("database pool ready (max %d connections)", settings.pool_max_size)
        try:
            yield
        finally:
            await app.state.sites.close()
            await app.state.validators.close()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            try:
                await asyncio.wait_for(pool.close(), timeout=POOL_CLOSE_SECONDS)
            except TimeoutError:  # e.g. a database that stopped answering
                log.warning("database connections did not close in time; terminating them")
                pool.terminate()
            if isinstance(reads, replicas.ReadPools):
                await reads.close()

    app = _App(
        title="seo-engine",
        version=__version__,
        summary="Programmatic-SEO pages as HTML, sitemaps and a JSON API.",
        lifespan=lifespan,
        # No OpenTelemetry here: without this, FastAPI reads os.environ three times per
        # request to find out, which measured as a quarter of a cached page's time in the app.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.hot_paths = hot_paths
    app.state.settings = settings
    app.state.request_stats = metrics.RequestStats()
    handlers.install(app)
    app.add_middleware(Compression)
    app.add_middleware(RequestLimits)
    app.include_router(operations.router)
    app.include_router(api.router)
    app.include_router(sitemaps.router)
    app.include_router(favicon.router)
    app.include_router(web.router)  # last: its catch-all route serves every other path
    return app
