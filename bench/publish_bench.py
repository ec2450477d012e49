"""Benchmark publishing against today's `generate`, in one run.

Measures (a) the real CLI's `generate` of the bundled seeds into an empty page table, as
the bundled site has it (every page live), in a database of its own; (p) the same with the
drip on (`[publishing] new_pages = "queued"`, `per_day = 500`) and the hand edits of
docs/examples/overrides.csv, so every link is built against what is live: the target is
p/a ≤ 1.10. Then, on (p)'s pages: (r) one day's drip release (500 pages, best first, and
the links of the pages near them rewritten); (s) publishing one whole service at once;
(u) an unchanged `generate` after those steps, which must write nothing (the documents a
publishing step rewrites are exactly what a generate builds). Run from the repository root:

    .venv/bin/python bench/publish_bench.py [--subset us|full] [--workers N]

Databases `seo_engine_bench` and `seo_engine_bench_publishing` are created and dropped;
DATABASE_URL or the embedded server as in bench/generate_bench.py. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_bench as gb

from seo_engine.db.embedded import EmbeddedError

PLAIN_DB = gb.BENCH_DB
PUBLISHING_DB = "seo_engine_bench_publishing"
SERVICE = "drain-cleaning"
PER_DAY = 500


def drip_site() -> Path:
    """The bundled site file with a drip of PER_DAY pages a day."""
    gb.OUT.mkdir(parents=True, exist_ok=True)
    site = (gb.ROOT / "seeds" / "site.toml").read_text()
    target = gb.OUT / "site-drip.toml"
    target.write_text(site + f'\n[publishing]\nnew_pages = "queued"\nper_day = {PER_DAY}\n')
    return target


def bench(args: argparse.Namespace, admin: str, where: str) -> bool:
    plain = gb.with_database(admin, PLAIN_DB)
    drip = gb.with_database(admin, PUBLISHING_DB)
    workers = ["--workers", str(args.workers)] if args.workers else []
    country = ["--country", "US"] if args.subset == "us" else []
    gb.setup(plain, gb.ROOT / "seeds" / "site.toml", country)
    gb.setup(drip, drip_site(), country)
    gb.cli(["seed", "overrides", "docs/examples/overrides.csv"], drip)
    asyncio.run(gb.sql(drip, "CHECKPOINT"))
    a = gb.cli(["generate", *workers], plain)
    pages = asyncio.run(gb.sql(plain, "SELECT count(*) FROM pages"))[0]
    asyncio.run(gb.sql(admin, f"DROP DATABASE IF EXISTS {PLAIN_DB} WITH (FORCE)", "CHECKPOINT"))
    p = gb.cli(["generate", *workers], drip)
    queued = asyncio.run(gb.sql(drip, "SELECT count(*) FROM pages WHERE state = 'queued'"))[0]
    asyncio.run(gb.sql(drip, "UPDATE sites SET drip_from = now() - interval '1 day'", settle=True))
    r = gb.cli(["publish", "release"], drip)
    s = gb.cli(["publish", "live", "--service", SERVICE], drip)
    u = gb.cli(["generate", *workers], drip)
    found = gb.SUMMARY.search(u.stdout)
    if found is None:
        raise gb.BenchError(f"no summary line in the re-run's output:\n{u.stdout}")
    written = sum(int(n.replace(",", "")) for n in found.groups()[:2]) + int(
        found.groups()[3].replace(",", "")
    )
    commit = gb.git("rev-parse", "--short", "HEAD") + (" (dirty)" if gb.git("status", "-s") else "")
    command = shlex.join([os.path.relpath(sys.executable, gb.ROOT), *sys.argv])
    table = [
        ("measure", "value", "target"),
        ("---", "---", "---"),
        ("pages", f"{pages:,}", ""),
        ("(a) generate from empty, every page live", f"{a.seconds:.1f} s", ""),
        (
            "(p) the same, drip on and 12 overrides",
            f"{p.seconds:.1f} s; {queued:,} queued",
            "",
        ),
        ("ratio p/a", f"{p.seconds / a.seconds:.2f}", "≤ 1.10"),
        (
            "peak RSS largest worker, (a) / (p)",
            f"{a.worker_rss / gb.MB:.0f} / {p.worker_rss / gb.MB:.0f} MB",
            "< 300 MB",
        ),
        ("(r) one day's drip release", f"{r.seconds:.1f} s", ""),
        (f"(s) publish live --service {SERVICE}", f"{s.seconds:.1f} s", ""),
        ("(u) generate after (r) and (s)", f"{u.seconds:.1f} s; {written} rows written", "0"),
    ]
    print("\n".join(f"| {' | '.join(row)} |" for row in table))
    print(f"\n- date: {datetime.now(UTC).isoformat(timespec='seconds')}; commit {commit}")
    print(f"- {where}; cores: {os.cpu_count()}")
    print(f"- command: `{command}`")
    print("\nCLI summary lines (a, p, r, s, u):\n")
    for run in (a, p, r, s, u):
        print("\n".join(f"    {line}" for line in run.stdout.splitlines() if line[:1].strip()))
    if written:
        print("error: the generate after publishing wrote rows", file=sys.stderr)
    return written == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", choices=["us", "full"], default="full")
    parser.add_argument("--workers", type=int, default=None, help="generate --workers N")
    args = parser.parse_args()
    try:
        admin, where = gb.connect_server()
        names = (PLAIN_DB, PUBLISHING_DB)
        drops = [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)" for name in names]
        asyncio.run(gb.sql(admin, *drops, *(f"CREATE DATABASE {name}" for name in names)))
        try:
            return 0 if bench(args, admin, where) else 1
        finally:
            asyncio.run(gb.sql(admin, *drops))
    except (gb.BenchError, EmbeddedError, OSError, asyncpg.PostgresError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
