"""How the costs grow with the page set: generate time, table and index sizes, page and
list p99, at three sizes on this machine (docs/scale-out.md extrapolates from them).

Sizes: `small` (the first 341 US locations of the bundled seeds x 120 services: 40,920
pages), `us` (3,407 locations: 408,840) and `full` (33,961: 4,075,320). For each, in a
database of its own: the real CLI's `generate` from empty (timed), the sizes of `pages` and
its indexes, then `seo-engine serve --workers 2` under wrk (2 threads, 32 connections,
`--duration` seconds) for random pages (of a 20,000-page sample), list pages of 100 at
random places of the whole list (by cursor), and the first page of a random service's,
location's and region's list (`/api/v1/pages?service=…&limit=100`). Run from the
repository root after `make bench-tools`:

    .venv/bin/python bench/scale_bench.py [--sizes small,us,full] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_bench as gb
import serve_bench as sb

from seo_engine.db.embedded import EmbeddedError
from seo_engine.serve import api, cursors, sync

SCALE_DB = "seo_engine_bench_scale"
PORT = 8785
SMALL_LOCATIONS = 341
SAMPLE = 20_000
SIZES = """
SELECT pg_total_relation_size('pages') AS total,
       pg_relation_size('pages') AS heap,
       pg_indexes_size('pages') AS indexes,
       coalesce(pg_total_relation_size(reltoastrelid), 0) AS toast,
       (SELECT count(*) FROM pages) AS pages
FROM pg_class WHERE oid = 'pages'::regclass
"""
PAGE_LINES = f"""
SELECT path FROM pages WHERE deleted_at IS NULL AND state = 'live'
ORDER BY random() LIMIT {SAMPLE}
"""  # noqa: S608 (constant)
# Lists: a page of 100 at a random place of the whole list (by cursor, as a client
# walking it gets), and the first page of a random service's list.
LIST_IDS = f"SELECT id FROM pages WHERE state = 'live' ORDER BY random() LIMIT {SAMPLE // 20}"  # noqa: S608
SERVICE_LINES = "SELECT '/api/v1/pages?limit=100&service=' || slug FROM services"
# The first page of a random location's list, and of a random region's.
LOCATION_LINES = f"""
SELECT '/api/v1/pages?limit=100&location=' || slug FROM locations ORDER BY random() LIMIT {SAMPLE}
"""  # noqa: S608 (constant)
REGION_LINES = """
SELECT DISTINCT '/api/v1/pages?limit=100&region=' || region_code FROM locations
WHERE region_code <> ''
"""
# What each wrk run reads, by the name it has in the table.
ROUTES = ("page", "list", "service list", "location list", "region list")


@dataclass
class Size:
    name: str
    pages: int = 0
    generate_seconds: float = 0.0
    total: int = 0
    heap: int = 0
    indexes: int = 0
    toast: int = 0
    # route -> (requests a second, p99 in ms, errors: non-2xx/3xx answers and socket errors)
    served: dict[str, tuple[float, float, int]] = field(default_factory=dict)


def small_locations(target: Path) -> Path:
    """The first SMALL_LOCATIONS US rows of the bundled locations file."""
    with (gb.ROOT / "seeds" / "locations.csv").open(encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream))
    kept = [row for row in rows[1:] if row[5] == "US"][:SMALL_LOCATIONS]
    with target.open("w", encoding="utf-8", newline="") as stream:
        csv.writer(stream, lineterminator="\n").writerows([rows[0], *kept])
    return target


def setup(dsn: str, size: str) -> None:
    gb.cli(["db", "migrate"], dsn)
    gb.cli(["sites", "add", "seeds/site.toml"], dsn)
    if size == "small":
        gb.OUT.mkdir(parents=True, exist_ok=True)
        locations = small_locations(gb.OUT / "locations-small.csv")
        gb.cli(["seed", "locations", str(locations)], dsn)
    else:
        country = ["--country", "US"] if size == "us" else []
        gb.cli(["seed", "locations", "seeds/locations.csv", *country], dsn)
    gb.cli(["seed", "services", "seeds/services.csv"], dsn)


async def _fetch(dsn: str, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetch(query)
    finally:
        await connection.close()


def lines(dsn: str, query: str, target: Path) -> Path:
    """A wrk request file: the first column of the query's rows."""
    rows = asyncio.run(_fetch(dsn, query))
    target.write_text("\n".join(row[0] for row in rows) + "\n")
    return target


async def _list_cursors(dsn: str) -> list[str]:
    connection = await asyncpg.connect(dsn)
    try:
        key = await cursors.load_key(connection)
        site_id = await connection.fetchval("SELECT id FROM sites ORDER BY id LIMIT 1")
        snapshot = await sync.current_snapshot(connection)
        ids = [row["id"] for row in await connection.fetch(LIST_IDS)]
    finally:
        await connection.close()
    query = api.list_fingerprint(site_id, None, None, None, None, None, None, None)
    return [cursors.encode(key, query, [snapshot, page_id]) for page_id in ids]


def list_lines(dsn: str, target: Path) -> Path:
    """List pages at random places, with cursors made as the API makes them."""
    found = asyncio.run(_list_cursors(dsn))
    target.write_text("".join(f"/api/v1/pages?limit=100&cursor={c}\n" for c in found))
    return target


def measure(admin: str, size: str, duration: int) -> Size:
    dsn = gb.with_database(admin, SCALE_DB)
    drop = f"DROP DATABASE IF EXISTS {SCALE_DB} WITH (FORCE)"
    asyncio.run(gb.sql(admin, drop, f"CREATE DATABASE {SCALE_DB}"))
    try:
        setup(dsn, size)
        asyncio.run(gb.sql(dsn, "CHECKPOINT"))
        result = Size(size)
        result.generate_seconds = gb.cli(["generate"], dsn).seconds
        asyncio.run(gb.sql(dsn, "VACUUM ANALYZE pages", "CHECKPOINT"))
        row = asyncio.run(_sizes(dsn))
        result.pages, result.total, result.heap = row["pages"], row["total"], row["heap"]
        result.indexes, result.toast = row["indexes"], row["toast"]
        with tempfile.TemporaryDirectory(prefix="scale-bench-") as work:
            folder = Path(work)
            scripts = {}
            files = dict(
                zip(
                    ROUTES,
                    (
                        lines(dsn, PAGE_LINES, folder / "page.txt"),
                        list_lines(dsn, folder / "list.txt"),
                        lines(dsn, SERVICE_LINES, folder / "service_list.txt"),
                        lines(dsn, LOCATION_LINES, folder / "location_list.txt"),
                        lines(dsn, REGION_LINES, folder / "region_list.txt"),
                    ),
                    strict=True,
                )
            )
            for name, file in files.items():
                scripts[name] = folder / f"{name.replace(' ', '_')}.lua"
                scripts[name].write_text(sb.lua_script(file))
            env = {**os.environ, "DATABASE_URL": dsn}
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            base = f"http://127.0.0.1:{PORT}"
            with sb.server([*sb.PRODUCT, "--workers", "2"], PORT, env, "/readyz"):
                for name, script in scripts.items():
                    sb.wrk(script, 3, 32, base)  # warm up
                    measured = sb.wrk(script, duration, 32, base)
                    result.served[name] = (measured.rps, measured.p99, measured.errors)
        return result
    finally:
        asyncio.run(gb.sql(admin, drop))


async def _sizes(dsn: str) -> asyncpg.Record:
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(SIZES)
        assert row is not None
        return row
    finally:
        await connection.close()


def mb(count: int) -> str:
    return f"{count / 2**20:,.0f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="small,us,full")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    args = parser.parse_args()
    try:
        admin, where = gb.connect_server()
        results = [measure(admin, size, args.duration) for size in args.sizes.split(",")]
    except (gb.BenchError, EmbeddedError, OSError, asyncpg.PostgresError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    command = shlex.join([os.path.relpath(sys.executable, gb.ROOT), *sys.argv])
    commit = gb.git("rev-parse", "--short", "HEAD")
    print(f"# {command}\n# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {commit}, {where}\n")
    print(
        "| size | pages | generate | µs/page | table | heap | indexes | toast | bytes/page | "
        + " | ".join(f"{route} req/s | {route} p99 | {route} errors" for route in ROUTES)
        + " |"
    )
    print("|---|" + "---:|" * (8 + 3 * len(ROUTES)))
    for r in results:
        served = " | ".join(
            f"{rps:,.0f} | {p99:.1f} ms | {errors}"
            for rps, p99, errors in (r.served[route] for route in ROUTES)
        )
        print(
            f"| {r.name} | {r.pages:,} | {r.generate_seconds:,.1f} s | "
            f"{r.generate_seconds / r.pages * 1e6:,.0f} | {mb(r.total)} | {mb(r.heap)} | "
            f"{mb(r.indexes)} | {mb(r.toast)} | {r.total / r.pages:,.0f} | {served} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
