"""Benchmark gzip on the streamed responses: the NDJSON export and the sitemap shards, each
downloaded with `Accept-Encoding: gzip` and without, from the real server, in one run.

Sets up its own database (`seo_engine_gzip_bench`: the bundled site, the first N US cities
of the bundled locations x 120 services), then for every gzip level asked for
(`--levels`: ISA-L's 0-3, default 1) starts `seo-engine serve --workers 1`
with compression.STREAM_LEVEL set to it, and downloads each body `--rounds` times with and
without gzip, interleaved. Bodies are read raw (not decompressed), so the client's cost is
what any client pays to read them. Also times the compressors alone on the export's own
bytes: zlib at levels 1-9 and ISA-L at 0-3 (what each costs and saves). From the
repository root:

    .venv/bin/python bench/compression_bench.py [--locations 1000] [--levels 0 1 2]

DATABASE_URL, if set, names the server to use; else an embedded server runs in
bench/out/embedded. The database is dropped at the end. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from generate_bench import ROOT, BenchError, cli, connect_server, git, sql, with_database
from isal import isal_zlib

BENCH_DB = "seo_engine_gzip_bench"
PORT = 8799  # loopback only
MB = 1024 * 1024
# The server, with the level under test put into the compression module before it starts.
SERVE = (
    "import sys; from seo_engine.serve import compression; "
    "compression.STREAM_LEVEL = int(sys.argv[1]); "
    "from seo_engine.cli import app; app(sys.argv[2:], prog_name='seo-engine')"
)


def us_locations(count: int, target: Path) -> Path:
    lines = (ROOT / "seeds" / "locations.csv").read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines[1:] if ",US," in line][:count]
    target.write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
    return target


@contextmanager
def server(dsn: str, level: int) -> Iterator[str]:
    port = PORT
    command = [sys.executable, "-c", SERVE, str(level), "serve", "--workers", "1"]
    env = {**os.environ, "DATABASE_URL": dsn, "SEO_ENGINE_LOG_LEVEL": "warning"}
    process = subprocess.Popen(
        [*command, "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise BenchError("the server did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def download(client: httpx.Client, url: str, gzip: bool) -> tuple[float, int]:
    """Seconds to read the whole body as sent, and its size on the wire."""
    headers = {"accept-encoding": "gzip" if gzip else "identity"}
    size = 0
    started = time.perf_counter()
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code != 200:
            raise BenchError(f"{url}: {response.status_code}")
        if gzip != (response.headers.get("content-encoding") == "gzip"):
            raise BenchError(f"{url}: content-encoding {response.headers.get('content-encoding')}")
        for chunk in response.iter_raw():
            size += len(chunk)
    return time.perf_counter() - started, size


def compressor_levels(body: bytes) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    levels = [(zlib, "zlib", level) for level in range(1, 10)]
    levels += [(isal_zlib, "ISA-L", level) for level in range(4)]
    for module, name, level in levels:
        started = time.perf_counter()
        compressor = module.compressobj(level, module.DEFLATED, 31)
        size = 0
        for at in range(0, len(body), 1 << 20):
            size += len(compressor.compress(body[at : at + (1 << 20)]))
        size += len(compressor.flush())
        seconds = time.perf_counter() - started
        rows.append(
            (f"{name} {level}", f"{len(body) / MB / seconds:,.0f}", f"{size / len(body):.3f}")
        )
    return rows


def bench(args: argparse.Namespace, admin: str, where: str) -> None:
    dsn = with_database(admin, BENCH_DB)
    locations = us_locations(args.locations, Path(f"/tmp/gzip-bench-{os.getpid()}.csv"))
    try:
        for step in (
            ["db", "migrate"],
            ["sites", "add", "seeds/site.toml"],
            ["seed", "locations", str(locations)],
            ["seed", "services", "seeds/services.csv"],
            ["generate"],
        ):
            cli(step, dsn)
    finally:
        locations.unlink(missing_ok=True)
    pages = asyncio.run(sql(dsn, "SELECT count(*) FROM pages"))[0]
    results: dict[tuple[int, str, bool], list[float]] = {}
    sizes: dict[tuple[str, bool], int] = {}
    export_body = b""
    for level in args.levels:
        with server(dsn, level) as url, httpx.Client(base_url=url, timeout=600) as client:
            index = client.get("/sitemap.xml").text
            shards = re.findall(r"<loc>[^<]*?(/sitemap-pages-\d+\.xml)</loc>", index)
            bodies = {"export": "/api/v1/export.ndjson", **{f"sitemap {s}": s for s in shards}}
            if not export_body:
                export_body = client.get(bodies["export"], headers={"accept-encoding": ""}).content
            for _ in range(args.rounds):
                for name, path in bodies.items():
                    for gzip in (False, True):
                        seconds, size = download(client, path, gzip)
                        results.setdefault((level, name, gzip), []).append(seconds)
                        sizes[(name, gzip)] = size
    print("| level | body | identity MB/s | gzip MB/s (of identity bytes) | gzip / identity |")
    print("|---|---|---:|---:|---:|")
    for (level, name, gzip), times in sorted(results.items()):
        if gzip:
            continue
        plain = statistics.median(times)
        packed = statistics.median(results[(level, name, True)])
        megabytes = sizes[(name, False)] / MB
        print(
            f"| {level} | {name} | {megabytes / plain:,.0f} | {megabytes / packed:,.0f} "
            f"| {plain / packed:.2f} |"
        )
    print("\nThe compressors alone on the export's bytes (one core):\n")
    print("| level | MB/s in | compressed / original |")
    print("|---|---:|---:|")
    for row in compressor_levels(export_body):
        print(f"| {' | '.join(row)} |")
    commit = git("rev-parse", "--short", "HEAD") + (" (dirty)" if git("status", "-s") else "")
    print(f"\n- date: {datetime.now(UTC).isoformat(timespec='seconds')}; commit {commit}")
    print(f"- {pages:,} pages; export {len(export_body) / MB:,.0f} MB; server: {where}")
    print(f"- medians of {args.rounds} rounds; command: `{' '.join(sys.argv)}`")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locations", type=int, default=1000)
    parser.add_argument("--levels", type=int, nargs="+", default=[1])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    admin, where = connect_server()
    drop = f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"
    asyncio.run(sql(admin, drop, f"CREATE DATABASE {BENCH_DB}"))
    try:
        bench(args, admin, where)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        asyncio.run(sql(admin, drop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
