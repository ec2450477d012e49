"""What each CLI command does, as one coroutine per command over a fresh connection."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from seo_engine.db import database, replicas
from seo_engine.generate import audit, override_review, run
from seo_engine.ingest import dimensions, overrides, sites
from seo_engine.ingest.dimensions import SeedOptions, SeedReport
from seo_engine.progress import Progress
from seo_engine.publish import indexnow, plan, release
from seo_engine.serve import preview, static_export, surrogate, sync
from seo_engine.settings import Settings


def _count_lines(path: Path) -> int:
    """Physical lines in a file, read in chunks: the progress total, not a row count."""
    lines = 0
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                lines += chunk.count(b"\n")
    except OSError:
        return 0
    return lines


async def add_site(settings: Settings, path: Path) -> tuple[sites.Site, str]:
    """Validate a site file and store it."""
    definition = sites.load_definition(path)
    async with database.session(settings) as connection:
        return await sites.store(connection, definition)


async def list_sites(settings: Settings) -> list[sites.Site]:
    async with database.session(settings) as connection:
        return await sites.all_sites(connection)


async def seed_file(
    settings: Settings, site_slug: str | None, kind: str, path: Path, options: SeedOptions
) -> SeedReport:
    """Load one seed file into a site, with a progress line on long files."""
    async with database.session(settings, bulk=True) as connection:
        site = await sites.find(connection, site_slug)
        progress = Progress(f"seed {kind}", total=_count_lines(path) - 1, unit="rows")
        if kind == "overrides":
            report = await overrides.seed(connection, site, path, options, progress.advance)
        else:
            report = await dimensions.seed(connection, site, kind, path, options, progress.advance)
    if progress.done:
        progress.finish()
    return report


async def generate_pages(settings: Settings, options: run.GenerateOptions) -> run.GenerateReport:
    """Generate pages with a progress bar."""
    bars, start = _bars("generate", "pages")
    report = await run.generate(settings, options, start)
    for bar in bars:
        bar.finish()
    return report


def _bars(label: str, unit: str) -> tuple[list[Progress], Callable[[int], Callable[[int], None]]]:
    bars: list[Progress] = []

    def start(total: int) -> Callable[[int], None]:
        bar = Progress(label, total=total, unit=unit)
        bars.append(bar)
        return bar.advance

    return bars, start


async def export_static(
    settings: Settings, site_slug: str | None, folder: Path
) -> static_export.ExportReport:
    bars, start = _bars("export", "files")
    report = await static_export.export_static(settings, site_slug, folder, start)
    for bar in bars:
        bar.finish()
    return report


async def export_ndjson(
    settings: Settings, site_slug: str | None, target: Path, since: datetime | None
) -> static_export.ExportReport:
    bars, start = _bars("export", "pages")
    report = await static_export.export_ndjson(settings, site_slug, target, since, start)
    for bar in bars:
        bar.finish()
    return report


async def audit_site(
    settings: Settings, site_slug: str | None, limit: int, links: bool
) -> audit.Audit:
    """The quality gate's stored verdicts on a site, summarised."""
    async with database.session(settings) as connection:
        site = await sites.find(connection, site_slug)
        return await audit.audit(connection, site, limit, links=links)


async def preview_page(
    settings: Settings,
    site_slug: str | None,
    site_file: Path | None,
    service_slug: str,
    location_slug: str,
) -> preview.Preview:
    """One page as generate would build it, without writing anything."""
    async with database.session(settings) as connection:
        return await preview.preview_page(
            connection, site_slug, site_file, service_slug, location_slug
        )


async def preview_sample(
    settings: Settings, site_slug: str | None, site_file: Path | None, size: int
) -> audit.Audit:
    """The audit of a sample of pages rendered now, without writing anything."""
    async with database.session(settings) as connection:
        return await preview.preview_sample(connection, site_slug, site_file, size)


async def list_overrides(settings: Settings, site_slug: str | None) -> list[dict[str, str]]:
    async with database.session(settings) as connection:
        site = await sites.find(connection, site_slug)
        return await overrides.stored(connection, site.id)


async def stale_overrides(
    settings: Settings,
    site_slug: str | None,
    service: str | None,
    location: str | None,
    limit: int,
    accept: bool,
) -> tuple[list[dict[str, str]], int]:
    """The stale overridden fields (see override_review), marked reviewed with `accept`."""
    async with database.session(settings) as connection:
        site = await sites.find(connection, site_slug)
        rows = await override_review.stale(connection, site.id, service, location, limit)
        for row in rows:
            row["path"] = site.page_path(row["service"], row["location"])
        if not accept:
            return rows, 0
        return rows, await override_review.accept(connection, site.id, service, location)


async def push_indexnow(
    settings: Settings, site_slug: str | None, batch: int
) -> indexnow.PushReport:
    """Submit the site's changed URLs to its IndexNow endpoint (after publishing what is
    due, which no server may have done)."""
    async with database.session(settings) as connection:
        site = await sites.find(connection, site_slug)
        await release.release_due(connection, site, wait=True)
        return await indexnow.push(connection, site, batch)


async def indexnow_status(settings: Settings, site_slug: str | None) -> indexnow.Status:
    async with database.session(settings) as connection:
        site = await sites.find(connection, site_slug)
        return await indexnow.status(connection, site)


async def publish_release(settings: Settings, site_slug: str | None) -> release.ReleaseReport:
    """Publish what is due now: what the server does on its clock."""
    async with database.session(settings) as connection:
        site = await sites.find(connection, site_slug)
        report = await release.release_due(connection, site, wait=True)
        assert report is not None
        return report


async def publish_change(
    settings: Settings,
    site_slug: str | None,
    selection: release.Selection,
    state: str,
    publish_at: datetime | None,
    dry_run: bool,
) -> tuple[release.StepReport, int]:
    """Put the selected pages into `state` (after publishing what is due); returns the
    step and how many pages the selection holds."""
    async with database.session(settings) as connection:
        site = await sites.find(connection, site_slug)
        await release.release_due(connection, site, wait=True)
        async with connection.transaction():
            await release.lock(connection, site, wait=True)
            release.check(site, state, publish_at, await connection.fetchval("SELECT now()"))
            ids = await selection.ids(connection, site.id)
            if dry_run:
                return release.StepReport(site.slug, state), len(ids)
            return await release.step(connection, site, ids, state, publish_at), len(ids)


async def publish_status(settings: Settings, site_slug: str | None) -> plan.Status:
    async with database.session(settings) as connection:
        return await plan.status(connection, await sites.find(connection, site_slug))


async def publish_preview(settings: Settings, site_slug: str | None, days: int) -> list[plan.Day]:
    async with database.session(settings) as connection:
        return await plan.preview(connection, await sites.find(connection, site_slug), days)


async def wait_for_replicas(settings: Settings, timeout: float) -> list[str]:
    """Wait until every read replica has replayed what the primary has written so far."""
    async with database.session(settings) as connection:
        return await replicas.wait_for_replay(connection, settings, timeout)


async def purge_mark(settings: Settings) -> str:
    """The snapshot before a job: what it changes, this snapshot does not see."""
    async with database.session(settings) as connection:
        return await sync.current_snapshot(connection)


async def purge_after(
    settings: Settings, site_slug: str, snapshot: str
) -> tuple[surrogate.Purge, str | None]:
    """What changed since `snapshot`, sent to the purge webhook when there is one; returns
    the purge and, if the webhook did not take it, why."""
    async with database.session(settings) as connection:
        site = await sites.find(connection, site_slug)
        purge = await surrogate.changed(connection, site, snapshot, settings.purge_max_keys)
    return purge, await surrogate.deliver(settings.purge, purge)
