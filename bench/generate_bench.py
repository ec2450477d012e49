"""Benchmark `seo-engine generate` against its limits, in one run.

Measures (g) the real CLI's `generate` of the bundled seeds into an empty page table with
the quality gate off (`[quality] gate = false`: nothing compared or scored), in a database
of its own; (a) the same with the gate on, as the bundled site has it: wall time and peak
RSS of its process tree (parent, largest worker, summed tree; psutil every 0.1 s); (b) the
limit: a server-side binary `COPY pages_copy FROM '<file>'` of exactly (a)'s rows into an
empty copy of `pages` (same indexes and foreign key); (c) an unchanged re-run of
`generate`, which must write nothing; (d) a re-run after one location was renamed, which
renders only the pages that show it. Databases `seo_engine_bench` and
`seo_engine_bench_ungated` are created, set up with the CLI (migrate, site, seeds) and
dropped at the end. Run from the repository root:

    .venv/bin/python bench/generate_bench.py [--subset us|full] [--workers N]

DATABASE_URL, if set, must name a superuser on a server on this machine (the COPY file is
under /tmp); else an embedded server runs in bench/out/embedded. Prints a Markdown table;
exits non-zero if a step fails or a check does not hold (e.g. the re-run wrote rows).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

from seo_engine.db.embedded import EmbeddedError, server_dsn

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_DIR = ROOT / "bench" / "out" / "embedded"
BENCH_DB = "seo_engine_bench"
UNGATED_DB = "seo_engine_bench_ungated"
OUT = ROOT / "bench" / "out"
RENDERED = re.compile(r"([\d,]+) of ([\d,]+) pages not rendered")
MB = 1024 * 1024
SUMMARY = re.compile(r"([\d,]+) inserted, ([\d,]+) updated, ([\d,]+) unchanged, ([\d,]+) removed")
# Index definitions without their names, so that pages and pages_copy can be compared.
INDEXES = """
SELECT indisunique, indisprimary, regexp_replace(pg_get_indexdef(indexrelid), '^.* USING ', '')
FROM pg_index WHERE indrelid = $1::regclass ORDER BY 3, 1, 2
"""
WRITES = "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname = 'pages'"
OTHERS = """
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


class BenchError(Exception):
    """A step failed or a check did not hold."""


@dataclass
class Run:
    seconds: float = 0.0
    stdout: str = ""
    parent_rss: int = 0
    worker_rss: int = 0
    tree_rss: int = 0

    def sample(self, parent: psutil.Process) -> None:
        try:
            tree = parent_rss = parent.memory_info().rss
            children = parent.children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            try:
                rss = child.memory_info().rss
            except psutil.Error:
                continue
            tree += rss
            self.worker_rss = max(self.worker_rss, rss)
        self.parent_rss = max(self.parent_rss, parent_rss)
        self.tree_rss = max(self.tree_rss, tree)


def cli(args: list[str], dsn: str) -> Run:
    """Run `seo-engine ARGS` against dsn, timing it and polling its tree's memory."""
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONUNBUFFERED": "1"}
    run = Run()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "seo_engine", *args], cwd=ROOT, env=env, stdout=out, stderr=err
        )
        parent = psutil.Process(process.pid)
        while process.poll() is None:
            run.sample(parent)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.1)
        run.seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        run.stdout = out.read().decode()
        if process.returncode != 0:
            stderr = err.read().decode().strip()
            raise BenchError(
                f"`seo-engine {shlex.join(args)}` exited {process.returncode}:\n{stderr}"
            )
    return run


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def sql(dsn: str, *statements: str, settle: bool = False) -> list[Any]:
    """Run statements on a fresh connection; return the first value of each.

    settle: first wait (≤ 10 s) until no other session uses the database; a backend flushes
    its statistics before it leaves pg_stat_activity.
    """
    connection = await asyncpg.connect(dsn)
    try:
        for _ in range(200 if settle else 0):
            if not await connection.fetchval(OTHERS):
                break
            await asyncio.sleep(0.05)
        return [await connection.fetchval(statement) for statement in statements]
    finally:
        await connection.close()


async def copy_limit(dsn: str, file: str) -> tuple[int, float, list[str]]:
    """Time a server-side binary COPY of every page into an empty copy of `pages`."""
    notes: list[str] = []
    connection = await asyncpg.connect(dsn)
    try:
        pages: int = await connection.fetchval("SELECT count(*) FROM pages")
        export = f"COPY (SELECT * FROM pages ORDER BY id) TO {file} (FORMAT binary)"  # noqa: S608
        await connection.execute(export)
        await connection.execute("CREATE TABLE pages_copy (LIKE pages INCLUDING ALL)")
        # LIKE copies no storage parameters (pages keeps documents in the row).
        options = await connection.fetchval(
            "SELECT array_to_string(reloptions, ', ') FROM pg_class WHERE oid = 'pages'::regclass"
        )
        if options:
            await connection.execute(f"ALTER TABLE pages_copy SET ({options})")
        # LIKE never copies foreign keys; pages pays for one on every insert, so add it.
        await connection.execute(
            "ALTER TABLE pages_copy ADD FOREIGN KEY (site_id) REFERENCES sites ON DELETE CASCADE"
        )
        source = await connection.fetch(INDEXES, "pages")
        target = await connection.fetch(INDEXES, "pages_copy")
        if [tuple(row) for row in source] != [tuple(row) for row in target]:
            raise BenchError(f"LIKE INCLUDING ALL did not copy the indexes: {source} vs {target}")
        notes.append(
            f"pages_copy: LIKE INCLUDING ALL copied all {len(target)} indexes; FK added; "
            f"storage parameters: {options or 'none'}"
        )
        identity = await connection.fetchval(
            "SELECT attidentity FROM pg_attribute WHERE attrelid = 'pages_copy'::regclass"
            " AND attname = 'id'"
        )
        kind = {b"a": "GENERATED ALWAYS", b"d": "BY DEFAULT"}.get(identity, repr(identity))
        notes.append(f"pages_copy.id is {kind} AS IDENTITY; COPY still writes the file's ids")
        await connection.execute("CHECKPOINT")
        started = time.monotonic()
        status = await connection.execute(f"COPY pages_copy FROM {file} (FORMAT binary)")
        seconds = time.monotonic() - started
        copied = int(status.split()[-1])
        same = await connection.fetchval(
            "SELECT (SELECT max(id) FROM pages) = (SELECT max(id) FROM pages_copy)"
        )
        if copied != pages or not same:
            raise BenchError(f"COPY loaded {copied:,} rows of {pages:,} (same max id: {same})")
        await connection.execute("DROP TABLE pages_copy")
        return pages, seconds, notes
    finally:
        await connection.close()


def connect_server() -> tuple[str, str]:
    """The admin DSN and a description of the server (credentials left out)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url, f"DATABASE_URL ({urlsplit(url).hostname or 'local socket'})"
    return server_dsn(EMBEDDED_DIR), f"embedded ({EMBEDDED_DIR.relative_to(ROOT)})"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def setup(dsn: str, site_file: Path, country: list[str]) -> list[Run]:
    steps = [
        ["db", "migrate"],
        ["sites", "add", str(site_file)],
        ["seed", "locations", "seeds/locations.csv", *country],
        ["seed", "services", "seeds/services.csv"],
    ]
    return [cli(step, dsn) for step in steps]


def ungated_site() -> Path:
    """The bundled site file with the quality gate off."""
    OUT.mkdir(parents=True, exist_ok=True)
    site = (ROOT / "seeds" / "site.toml").read_text()
    target = OUT / "site-ungated.toml"
    target.write_text(site.replace("[quality]", "[quality]\ngate = false", 1))
    return target


def rename_one_location(source: Path, target: Path, country: str | None) -> str:
    """The locations file with one row renamed (the middle one of those loaded); returns
    its key."""
    with source.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream))
    loaded = [row for row in rows[1:] if country is None or row[5] == country]
    middle = loaded[len(loaded) // 2]
    middle[2] += " Renamed"
    with target.open("w", encoding="utf-8", newline="") as stream:
        csv.writer(stream, lineterminator="\n").writerows(rows)
    return middle[0]


def rendered_line(run: Run) -> str:
    found = RENDERED.search(run.stdout)
    if found is None:
        return "every page"
    pages, total = (int(n.replace(",", "")) for n in found.groups())
    return f"{total - pages:,} of {total:,}"


def bench(args: argparse.Namespace, admin: str, where: str) -> bool:
    dsn = with_database(admin, BENCH_DB)
    ungated = with_database(admin, UNGATED_DB)
    workers = ["--workers", str(args.workers)] if args.workers else []
    country = ["--country", "US"] if args.subset == "us" else []
    setup(ungated, ungated_site(), country)
    runs = setup(dsn, ROOT / "seeds" / "site.toml", country)
    timings = "; ".join(f"{run.seconds:.1f} s" for run in runs)
    version = asyncio.run(sql(dsn, "SHOW server_version", "CHECKPOINT"))[0]
    g = cli(["generate", *workers], ungated)
    asyncio.run(sql(admin, f"DROP DATABASE IF EXISTS {UNGATED_DB} WITH (FORCE)", "CHECKPOINT"))
    a = cli(["generate", *workers], dsn)
    folder = Path(tempfile.mkdtemp(prefix="seo-bench-", dir="/tmp"))
    folder.chmod(0o777)  # the server writes the file as its own OS user
    try:
        pages, copy_seconds, notes = asyncio.run(copy_limit(dsn, literal(f"{folder}/pages.bin")))
        size = (folder / "pages.bin").stat().st_size
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    before = asyncio.run(sql(dsn, "SELECT max(updated_at) FROM pages", WRITES, "CHECKPOINT"))
    c = cli(["generate", *workers], dsn)
    after = asyncio.run(sql(dsn, "SELECT max(updated_at) FROM pages", WRITES, settle=True))
    found = SUMMARY.search(c.stdout)
    if found is None:
        raise BenchError(f"no summary line in the re-run's output:\n{c.stdout}")
    inserted, updated, _, removed = (int(n.replace(",", "")) for n in found.groups())
    written = inserted + updated + removed
    ok = written == 0 and before[0] == after[0] and before[1] == after[1]
    renamed = OUT / "locations-renamed.csv"
    key = rename_one_location(
        ROOT / "seeds" / "locations.csv", renamed, "US" if args.subset == "us" else None
    )
    cli(["seed", "locations", str(renamed), *country], dsn)
    d = cli(["generate", *workers], dsn)
    commit = git("rev-parse", "--short", "HEAD") + (" (dirty)" if git("status", "-s") else "")
    command = shlex.join([os.path.relpath(sys.executable, ROOT), *sys.argv])
    moved = "unchanged" if before[0] == after[0] else "MOVED"
    rss = f"{a.parent_rss / MB:.0f} / {a.worker_rss / MB:.0f} / {a.tree_rss / MB:.0f} MB"
    rss_g = f"{g.parent_rss / MB:.0f} / {g.worker_rss / MB:.0f} / {g.tree_rss / MB:.0f} MB"
    table = [
        ("measure", "value", "target"),
        ("---", "---", "---"),
        ("pages", f"{pages:,}", ""),
        (
            "(g) generate from empty, gate off",
            f"{g.seconds:.1f} s, {pages / g.seconds:,.0f} pages/s",
            "",
        ),
        (
            "(a) generate from empty, gate on",
            f"{a.seconds:.1f} s, {pages / a.seconds:,.0f} pages/s",
            "",
        ),
        ("ratio a/g: what the gate adds", f"{a.seconds / g.seconds:.2f}", "≤ 1.30"),
        ("(b) server COPY binary", f"{copy_seconds:.1f} s, {pages / copy_seconds:,.0f} rows/s", ""),
        ("ratio a/b", f"{a.seconds / copy_seconds:.2f}", "≤ 2.0"),
        ("ratio g/b", f"{g.seconds / copy_seconds:.2f}", "(information)"),
        ("(c) unchanged re-run", f"{c.seconds:.1f} s", ""),
        ("ratio c/a", f"{c.seconds / a.seconds:.2f}", "≤ 0.10"),
        ("rows written by (c)", f"{written}; pg_stat {after[1] - before[1]}", "0"),
        ("max(updated_at) across (c)", moved, "unchanged"),
        (f"(d) re-run after renaming location {key}", f"{d.seconds:.1f} s", ""),
        ("pages (d) rendered", rendered_line(d), "those that show it"),
        ("peak RSS parent / largest worker / tree, (a)", rss, "< 300 MB per process"),
        ("peak RSS parent / largest worker / tree, (g)", rss_g, ""),
    ]
    print("\n".join(f"| {' | '.join(row)} |" for row in table))
    print(f"\n- date: {datetime.now(UTC).isoformat(timespec='seconds')}; commit {commit}")
    print(f"- PostgreSQL {version}, {where}; cores: {os.cpu_count()}")
    print(f"- command: `{command}`")
    print(f"- setup (migrate, site, locations, services): {timings}")
    print(f"- COPY file: {size / MB:,.0f} MB; " + "; ".join(notes))
    print("\nCLI summary lines (setup, g, a, c, d):\n")
    for run in [*runs, g, a, c, d]:
        print("\n".join(f"    {line}" for line in run.stdout.splitlines() if line[:1].strip()))
    if not ok:
        print("error: the unchanged re-run wrote rows", file=sys.stderr)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", choices=["us", "full"], default="full")
    parser.add_argument("--workers", type=int, default=None, help="generate --workers N")
    args = parser.parse_args()
    try:
        admin, where = connect_server()
        drops = [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)" for name in (BENCH_DB, UNGATED_DB)]
        creates = [f"CREATE DATABASE {name}" for name in (BENCH_DB, UNGATED_DB)]
        asyncio.run(sql(admin, *drops, *creates))
        try:
            return 0 if bench(args, admin, where) else 1
        finally:
            asyncio.run(sql(admin, *drops))
    except (BenchError, EmbeddedError, OSError, asyncpg.PostgresError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
