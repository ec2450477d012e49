"""Benchmark the Astro loader's sync (the sync token) against the same sync by listing
every page, in one run.

Generates the bundled site (US subset: 408,840 pages) in a database of its own, serves it
with `seo-engine serve`, and runs `astro sync` (Astro's content layer only: no HTML is
built) on two Astro projects, each through a byte-counting loopback proxy:

- **token**: integrations/astro-loader: one streamed export, then only the changes since
  the token kept in Astro's meta store;
- **list** (the baseline, bench/astro/list-loader.mjs): list every page (1,000 summaries a
  request), delete what is not listed, fetch each new or changed page's document (16 at a
  time), as loaders of APIs without sync tokens do.

Each does a full sync, then, after 1% of the pages changed (one page in a hundred gets
another title by hand: `seed overrides` and `generate`), an incremental sync. Prints time,
requests, bytes on the wire and the data store's size, and checks that each sync wrote the
pages that changed. Run from the repository root after `make integrations`:

    .venv/bin/python bench/sync_bench.py [--subset us|full] [--fields a,b,…] [--keep]

The database `seo_engine_bench_sync` is created and dropped (with `--keep`, kept and
reused); DATABASE_URL or the embedded server as in bench/generate_bench.py.
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
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_bench as gb

from seo_engine.db.embedded import EmbeddedError

SYNC_DB = "seo_engine_bench_sync"
EXISTS = f"SELECT count(*) > 0 FROM pg_database WHERE datname = '{SYNC_DB}'"  # noqa: S608
INTEGRATIONS = gb.ROOT / "integrations"
# What a page's head and first screen need. Astro writes its whole data store as one
# string (devalue): with every field of 408,840 documents, devalue's index of values
# overflows ("Map maximum size exceeded"); with sections and FAQs too, the string exceeds
# V8's maximum length ("Invalid string length"; Astro 5.18, measured in bench/RESULTS.md).
DEFAULT_FIELDS = "title,meta_description,h1,intro"
SYNC_LINE = re.compile(
    r"pages: (full|incremental|list) sync: (\d+) written, (\d+) unchanged, (\d+) deleted"
    r"(?: \((\d+) requests?)?"
)
CHANGED_EVERY = 100  # one page in a hundred


class Proxy:
    """A loopback TCP proxy to `port`, counting the bytes the server sends."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.bytes_down = 0
        self.bytes_up = 0
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self.connections += 1
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, down: bool) -> None:
        try:
            while chunk := source.recv(1 << 16):
                target.sendall(chunk)
                if down:
                    self.bytes_down += len(chunk)
                else:
                    self.bytes_up += len(chunk)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


@dataclass
class Sync:
    loader: str
    kind: str
    seconds: float
    written: int
    unchanged: int
    deleted: int
    requests: int
    bytes_down: int
    store_bytes: int


def project(name: str) -> Path:
    """An Astro project syncing one collection with BENCH_LOADER's loader."""
    folder = gb.OUT / f"astro-sync-{name}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "src").mkdir(parents=True)
    for file in ("astro.config.mjs", "package.json"):
        shutil.copy(INTEGRATIONS / "sites" / "astro" / file, folder / file)
    for file in ("content.config.ts", "list-loader.mjs"):
        shutil.copy(gb.ROOT / "bench" / "astro" / file, folder / "src" / file)
    (folder / "node_modules").symlink_to(INTEGRATIONS / "node_modules", target_is_directory=True)
    return folder


def astro_sync(folder: Path, loader: str, proxy: Proxy, fields: str) -> Sync:
    env = {
        **os.environ,
        "SEO_ENGINE_URL": f"http://127.0.0.1:{proxy.port}",
        "BENCH_LOADER": loader,
        "BENCH_FIELDS": fields,
        "ASTRO_TELEMETRY_DISABLED": "1",
        "NODE_OPTIONS": "--max-old-space-size=8192",
    }
    before = proxy.bytes_down
    started = time.monotonic()
    done = subprocess.run(
        ["node", "node_modules/astro/astro.js", "sync"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    found = SYNC_LINE.search(output)
    if done.returncode != 0 or found is None:
        raise gb.BenchError(f"astro sync ({loader}) failed:\n{output[-3000:]}")
    kind, written, unchanged, deleted, requests = found.groups()
    store = folder / ".astro-cache" / "data-store.json"
    return Sync(
        loader,
        kind,
        seconds,
        int(written),
        int(unchanged),
        int(deleted),
        int(requests or 0),
        proxy.bytes_down - before,
        store.stat().st_size if store.exists() else 0,
    )


# One page in a hundred, by id: the pages a marketer edits by hand (a title override).
EDITED_PAGES = f"""
SELECT s.slug AS service, l.slug AS location, p.title
FROM pages p JOIN services s ON s.id = p.service_id JOIN locations l ON l.id = p.location_id
WHERE p.id % {CHANGED_EVERY} = 0 ORDER BY p.id
"""  # noqa: S608 (constant)


def edited_titles(dsn: str, target: Path) -> int:
    """An overrides file giving 1% of the pages another title (another one on every run)."""

    async def rows() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetch(EDITED_PAGES)
        finally:
            await connection.close()

    edited = asyncio.run(rows())
    mark = datetime.now(UTC).strftime("%H:%M:%S")
    with target.open("w", encoding="utf-8", newline="") as stream:
        out = csv.writer(stream, lineterminator="\n")
        out.writerow(["service", "location", "field", "value"])
        for row in edited:
            title = row["title"].split(" (edited")[0]
            out.writerow([row["service"], row["location"], "title", f"{title} (edited {mark})"])
    return len(edited)


def serve(dsn: str) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "seo_engine", "serve", "--port", str(port), "--workers", "2"],
        cwd=gb.ROOT,
        env={**os.environ, "DATABASE_URL": dsn},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise gb.BenchError("seo-engine serve exited while starting")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process, port
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise gb.BenchError("seo-engine serve did not become ready in 60 s")


def bench(args: argparse.Namespace, admin: str, where: str) -> bool:
    if not (INTEGRATIONS / "astro-loader" / "dist" / "index.js").exists():
        raise gb.BenchError("run `make integrations` first")
    dsn = gb.with_database(admin, SYNC_DB)
    country = "US" if args.subset == "us" else None
    country_option = ["--country", "US"] if country else []
    if not asyncio.run(gb.sql(admin, EXISTS))[0]:
        asyncio.run(gb.sql(admin, f"CREATE DATABASE {SYNC_DB}"))
        gb.setup(dsn, gb.ROOT / "seeds" / "site.toml", country_option)
    generate = gb.cli(["generate"], dsn)  # with --keep, nothing to do on a later run
    pages = asyncio.run(gb.sql(dsn, "SELECT count(*) FROM pages"))[0]
    asyncio.run(gb.sql(dsn, "VACUUM ANALYZE pages", "CHECKPOINT"))
    server, port = serve(dsn)
    proxy = Proxy(port)
    results: list[Sync] = []
    try:
        folders = {name: project(name) for name in ("token", "list")}
        for name, folder in folders.items():
            results.append(astro_sync(folder, name, proxy, args.fields))
        overrides = gb.OUT / "overrides-1pct.csv"
        edited = edited_titles(dsn, overrides)
        since = datetime.now(UTC)
        gb.cli(["seed", "overrides", str(overrides)], dsn)
        regenerate = gb.cli(["generate"], dsn)
        rewritten = f"SELECT count(*) FROM pages WHERE updated_at >= '{since.isoformat()}'"  # noqa: S608
        changed = asyncio.run(gb.sql(dsn, rewritten))[0]
        for name, folder in folders.items():
            results.append(astro_sync(folder, name, proxy, args.fields))
    finally:
        server.terminate()
        server.wait(timeout=30)
    ok = report(args, where, pages, generate.seconds, edited, changed, regenerate.seconds, results)
    return ok


def report(
    args: argparse.Namespace,
    where: str,
    pages: int,
    generate_seconds: float,
    edited: int,
    changed: int,
    regenerate_seconds: float,
    results: list[Sync],
) -> bool:
    commit = gb.git("rev-parse", "--short", "HEAD") + (" (dirty)" if gb.git("status", "-s") else "")
    command = shlex.join([os.path.relpath(sys.executable, gb.ROOT), *sys.argv])
    print(f"# {command}\n# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {commit}, {where}")
    print(f"# {pages:,} pages (generate {generate_seconds:.1f} s); fields kept: {args.fields}")
    print(
        f"# then {edited:,} titles edited (overrides): {changed:,} pages rewritten "
        f"({100 * changed / pages:.2f}%; generate {regenerate_seconds:.1f} s)\n"
    )
    columns = "time | requests | bytes on the wire | written | unchanged | deleted | data store"
    print(f"| sync | loader | {columns} |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    ok = True
    for index, result in enumerate(results):
        full = index < 2  # token and list full, then token and list incremental
        step = "full" if full else "incremental (1%)"
        print(
            f"| {step} | {result.loader} | {result.seconds:.1f} s | {result.requests:,} | "
            f"{result.bytes_down / 1e6:,.1f} MB | {result.written:,} | {result.unchanged:,} | "
            f"{result.deleted:,} | {result.store_bytes / 1e6:,.0f} MB |"
        )
        expected = pages if full else changed
        if result.written != expected:
            wrote = f"{result.loader} {step} wrote {result.written:,}"
            print(f"# MISMATCH: {wrote}, expected {expected:,}")
            ok = False
    token_full, list_full, token_step, list_step = results
    print(
        f"\nratios token/list: full time {token_full.seconds / list_full.seconds:.2f}, "
        f"bytes {token_full.bytes_down / list_full.bytes_down:.2f}; incremental time "
        f"{token_step.seconds / list_step.seconds:.3f}, bytes "
        f"{token_step.bytes_down / list_step.bytes_down:.3f}, requests "
        f"{token_step.requests / list_step.requests:.4f}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", choices=["us", "full"], default="us")
    parser.add_argument("--fields", default=DEFAULT_FIELDS, help="document fields kept")
    parser.add_argument(
        "--keep", action="store_true", help=f"keep {SYNC_DB} for the next run (and reuse it)"
    )
    args = parser.parse_args()
    try:
        admin, where = gb.connect_server()
        drop = f"DROP DATABASE IF EXISTS {SYNC_DB} WITH (FORCE)"
        if not args.keep:
            asyncio.run(gb.sql(admin, drop))
        try:
            return 0 if bench(args, admin, where) else 1
        finally:
            if not args.keep:
                asyncio.run(gb.sql(admin, drop))
    except (gb.BenchError, EmbeddedError, OSError, asyncpg.PostgresError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
