"""What each CLI command does, as one coroutine per command over a fresh connection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from seo_engine import database, dimensions, generate, sites
from seo_engine.dimensions import SeedOptions, SeedReport
from seo_engine.progress import Progress
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
        report = await dimensions.seed(connection, site, kind, path, options, progress.advance)
    if progress.done:
        progress.finish()
    return report


async def generate_pages(
    settings: Settings, options: generate.GenerateOptions
) -> generate.GenerateReport:
    """Generate pages with a progress bar."""
    bars: list[Progress] = []

    def start(total: int) -> Callable[[int], None]:
        bar = Progress("generate", total=total, unit="pages")
        bars.append(bar)
        return bar.advance

    report = await generate.generate(settings, options, start)
    for bar in bars:
        bar.finish()
    return report
