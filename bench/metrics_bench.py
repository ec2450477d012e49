"""Benchmark the hot paths with metrics on against metrics off, in one run.

Two `seo-engine serve --workers 2` over the same generated page set, one with the default
settings (metrics on: every request counted and timed, request ids, /metrics), one with
SEO_ENGINE_METRICS=false (request ids stay: they are not metrics). wrk (bench/serve_bench.py's
script: random requests from a file) runs each scenario against one, then the other, in
alternating order, for `--rounds` rounds; each ratio is the median of the rounds' own
on/off ratios of requests per second. Target: ≥ 0.95 (within 5%). Run from the repository
root on a generated set (by default the US set `bench/sync_bench.py --keep` leaves, on
DATABASE_URL's server or the benches' embedded one), after `make bench-tools` (wrk):

    .venv/bin/python bench/metrics_bench.py [--rounds 3] [--duration 5] [--database NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_bench as gb
import serve_bench as sb

ON_PORT, OFF_PORT = 8775, 8776
SAMPLE = 20_000
# path[<TAB>If-None-Match] lines per scenario, from a random sample of live pages.
SCENARIOS = {
    "document": "SELECT '/api/v1/pages/' || service || '/' || location FROM sample",
    "page": "SELECT path FROM sample",
    "page_warm": "SELECT path FROM sample LIMIT 100",
    "document_304": (
        "SELECT '/api/v1/pages/' || service || '/' || location, "
        "'\"' || encode(content_hash, 'hex') || '\"' FROM sample"
    ),
}
SAMPLED = f"""
CREATE TEMP TABLE sample AS
SELECT p.path, p.content_hash, s.slug AS service, l.slug AS location
FROM pages p JOIN services s ON s.id = p.service_id JOIN locations l ON l.id = p.location_id
WHERE p.deleted_at IS NULL AND p.state = 'live' ORDER BY random() LIMIT {SAMPLE}
"""  # noqa: S608 (constant)


async def request_files(dsn: str, folder: Path) -> dict[str, Path]:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(SAMPLED)
        files = {}
        for name, query in SCENARIOS.items():
            rows = await connection.fetch(query)
            lines = ["\t".join(str(value) for value in row) for row in rows]
            files[name] = folder / f"{name}.txt"
            files[name].write_text("\n".join(lines) + "\n")
        return files
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--database",
        default="seo_engine_bench_sync",
        help="a generated page set (default: the one `sync_bench.py --keep` leaves)",
    )
    args = parser.parse_args()
    admin, _ = gb.connect_server()  # DATABASE_URL, or the benches' embedded server
    dsn = gb.with_database(admin, args.database)
    gb.cli(["db", "migrate"], dsn)  # a set kept from an earlier commit
    with tempfile.TemporaryDirectory(prefix="metrics-bench-") as work:
        folder = Path(work)
        files = asyncio.run(request_files(dsn, folder))
        scripts = {}
        for name, file in files.items():
            scripts[name] = folder / f"{name}.lua"
            scripts[name].write_text(sb.lua_script(file))
        base_env = {**os.environ, "DATABASE_URL": dsn}
        base_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        on_env = {**base_env, "SEO_ENGINE_METRICS": "true"}
        off_env = {**base_env, "SEO_ENGINE_METRICS": "false"}
        command = [*sb.PRODUCT, "--workers", "2"]
        ratios: dict[str, list[float]] = {name: [] for name in SCENARIOS}
        rates: dict[str, list[tuple[float, float]]] = {name: [] for name in SCENARIOS}
        with (
            sb.server(command, ON_PORT, on_env, "/readyz"),
            sb.server(command, OFF_PORT, off_env, "/readyz"),
        ):
            for script in scripts.values():  # warm both: caches, validator index
                for port in (ON_PORT, OFF_PORT):
                    sb.wrk(script, 3, args.connections, f"http://127.0.0.1:{port}")
            for round_number in range(args.rounds):
                for name, script in scripts.items():
                    order = [ON_PORT, OFF_PORT] if round_number % 2 == 0 else [OFF_PORT, ON_PORT]
                    measured = {}
                    for port in order:
                        base = f"http://127.0.0.1:{port}"
                        result = sb.wrk(script, args.duration, args.connections, base)
                        if result.errors:
                            raise SystemExit(f"{name} on :{port}: {result.errors} errors")
                        measured[port] = result.rps
                    rates[name].append((measured[ON_PORT], measured[OFF_PORT]))
                    ratios[name].append(measured[ON_PORT] / measured[OFF_PORT])
    command_line = shlex.join([os.path.relpath(sys.executable, sb.ROOT), *sys.argv])
    print(f"# {command_line}\n# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print(
        "| scenario | req/s on (median) | req/s off (median) | on/off per round | median | target |"
    )
    print("|---|---:|---:|---|---:|---:|")
    met = True
    for name in SCENARIOS:
        on = statistics.median(rate for rate, _ in rates[name])
        off = statistics.median(rate for _, rate in rates[name])
        median = statistics.median(ratios[name])
        rounds = ", ".join(f"{ratio:.3f}" for ratio in ratios[name])
        ok = median >= 0.95
        met &= ok
        print(
            f"| {name} | {on:,.0f} | {off:,.0f} | {rounds} | **{median:.3f}** | "
            f"≥ 0.95 {'met' if ok else 'MISSED'} |"
        )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
