"""What the quality gate costs generate's render workers, measured in one run.

Sets up the full bundled site in a database of its own (`seo_engine_quality_bench`, made
with the CLI and dropped at the end), then does in this process what the render workers do
for a few services when every page changed (render every location's page, sign it, find
each page's nearest in its family, judge it and build its document and row), with a clock
around each part the quality gate adds: reading the words (hashes, masks, data words), the
other signals (title and description keys), signatures, the LSH search and the verdicts.
Not clocked here: the spool between generate's steps and the comparison of places (step
2), which `bench/generate_bench.py` measures as part of the whole run. It prints the pages
per second with and without those parts, their share, and the peak memory of the process
(this bench keeps a family's rendered pages in memory, which generate does not). Run from
the repository root:

    .venv/bin/python bench/quality_bench.py [--services 3]

DATABASE_URL, if set, names the server (a superuser, to create the database); otherwise an
embedded server runs in bench/out/embedded, as for bench/generate_bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import resource
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_bench import ROOT, cli, connect_server, git, with_database

from seo_engine.generate import quality
from seo_engine.generate.pagebuild import LengthReport
from seo_engine.generate.render_worker import RENDER_BATCH, load_builder

BENCH_DB = "seo_engine_quality_bench"
spent: dict[str, float] = defaultdict(float)


def timed(part: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[part] += time.perf_counter() - start

    return wrapper


def instrument() -> None:
    for name, part in (
        ("signatures", "signatures"),
        ("text_key", "signals"),
        ("nearest", "LSH search"),
        ("judge", "verdicts"),
    ):
        setattr(quality, name, timed(part, getattr(quality, name)))
    quality.Vocabulary.read = timed("words, masks and data", quality.Vocabulary.read)  # type: ignore[method-assign]


async def measure(dsn: str, services: int) -> tuple[int, float]:
    connection = await asyncpg.connect(dsn)
    try:
        builder = await load_builder(connection, "localpros", datetime.now(UTC))
    finally:
        await connection.close()
    chosen = sorted(builder.services)[:: max(1, len(builder.services) // services)][:services]
    instrument()
    pages = 0
    start = time.perf_counter()
    for service_id in chosen:  # what a worker does for one service when every page changed
        service = builder.services[service_id]
        rendered = []
        blocks = []
        for at in range(0, len(builder.locations), RENDER_BATCH):
            batch = [
                builder.render(service, location, LengthReport())
                for location in builder.locations[at : at + RENDER_BATCH]
            ]
            blocks.append(quality.signatures([page.words for page in batch if page.words]))
            rendered.extend(batch)
        rows, equal = quality.nearest(np.concatenate(blocks))
        titles = Counter(page.signals.title_key for page in rendered)
        descriptions = Counter(page.signals.description_key for page in rendered)
        for index, (location, page) in enumerate(zip(builder.locations, rendered, strict=True)):
            near = (
                builder.locations[rows[index]].id if rows[index] >= 0 else None,
                int(equal[index]),
            )
            builder.judged_row(
                service,
                location,
                page,
                near,
                (None, 0),
                titles[page.signals.title_key],
                descriptions[page.signals.description_key],
            )
            pages += 1
    return pages, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=3)
    args = parser.parse_args()
    admin, where = connect_server()
    dsn = with_database(admin, BENCH_DB)
    asyncio.run(_recreate(admin))
    try:
        for step in (
            ["db", "migrate"],
            ["sites", "add", str(ROOT / "seeds" / "site.toml")],
            ["seed", "locations", str(ROOT / "seeds" / "locations.csv")],
            ["seed", "services", str(ROOT / "seeds" / "services.csv")],
        ):
            cli(step, dsn)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        pages, total = asyncio.run(measure(dsn, args.services))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        asyncio.run(_drop(admin))
    gate = sum(spent.values())
    without = total - gate
    print("| measure | value |\n| --- | --- |")
    print(f"| pages (one worker, {args.services} services × every location) | {pages:,} |")
    print(f"| with the gate | {total:.1f} s, {pages / total:,.0f} pages/s |")
    print(f"| without the gate's parts | {without:.1f} s, {pages / without:,.0f} pages/s |")
    for part, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"| {part} | {seconds:.2f} s, {seconds / pages * 1e6:.1f} µs a page |")
    print(f"| the gate's share of a worker's time | {gate / without:.1%} more than without |")
    print(f"| peak RSS: before rendering / after | {before:.0f} / {peak:.0f} MB |")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"\n- date: {now}; commit {git('rev-parse', '--short', 'HEAD')}; server: {where}")
    print(f"- command: `.venv/bin/python bench/quality_bench.py --services {args.services}`")
    return 0


async def _recreate(admin: str) -> None:
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
        await connection.execute(f"CREATE DATABASE {BENCH_DB}")
    finally:
        await connection.close()


async def _drop(admin: str) -> None:
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    finally:
        await connection.close()


if __name__ == "__main__":
    sys.exit(main())
