"""Real faults in real processes: crashes, restarts, black holes, overload, shutdown."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import make_settings
from tests.disposable import BlackHoleProxy, disposable_server
from tests.live import free_port, live_server, served
from tests.seeding import (
    LOCATION_HEADER,
    LOCATIONS,
    afetch,
    cli,
    fetch,
    setup_site,
    subset_of_bundled_locations,
    write,
)
from tests.waiting import until, until_async

pytestmark = pytest.mark.faults


async def statuses_over(
    url: str, path: str, seconds: float, clients: int = 8, stop: asyncio.Event | None = None
) -> list[tuple[float, object]]:
    """Hit `path` from `clients` loops for `seconds` (or until `stop`); (time, status)."""
    results: list[tuple[float, object]] = []
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def loop() -> None:
            while time.monotonic() - started < seconds and not (stop and stop.is_set()):
                try:
                    response = await client.get(path)
                    results.append((time.monotonic() - started, response.status_code))
                    if response.status_code == 503:
                        assert response.headers["retry-after"]
                        assert response.headers["content-type"] == "application/problem+json"
                except httpx.HTTPError as error:
                    results.append((time.monotonic() - started, type(error).__name__))
                await asyncio.sleep(0.02)  # the load's pace (about 50 requests/s per client)

        await asyncio.gather(*(loop() for _ in range(clients)))
    return results


def test_a_database_restart_under_load_gives_503s_then_recovers(tmp_path: Path) -> None:
    with disposable_server(tmp_path) as server:
        setup_site(server.dsn, tmp_path)
        settings = make_settings(server.dsn, acquire_timeout=0.5, pool_min_size=2)
        with live_server(settings) as url:
            crash_at, restart_at = 1.5, 3.5
            timeline: dict[str, float] = {}

            async def scenario() -> list[tuple[float, object]]:
                async def fault() -> None:  # the outage's timeline is the scenario itself
                    await asyncio.sleep(crash_at)
                    await asyncio.to_thread(server.crash)
                    await asyncio.sleep(restart_at - crash_at)
                    await asyncio.to_thread(server.restart)
                    timeline["back"] = time.monotonic()

                started = time.monotonic()
                stop = asyncio.Event()
                load = asyncio.create_task(
                    statuses_over(url, "/api/v1/pages/roof-repair/austin-tx", 60, stop=stop)
                )
                await fault()
                timeline["back"] -= started
                await asyncio.sleep(4.0)  # keep the load on well past the 2 s recovery window
                stop.set()
                return await load

            results = asyncio.run(scenario())
    kinds = {status for _, status in results}
    assert kinds <= {200, 503}, f"only 200 and 503 may be seen, got {kinds}"
    assert any(status == 503 for _, status in results), "the outage was never seen"
    late = [status for at, status in results if at > timeline["back"] + 2.0]
    assert late and set(late) == {200}, "200s must be back within 2 s of the restart"


def test_a_black_holed_database_times_out_requests_and_recovers(tmp_path: Path) -> None:
    with disposable_server(tmp_path) as server:
        setup_site(server.dsn, tmp_path)
        proxy = BlackHoleProxy(server.socket_dir)
        try:
            proxied = f"postgresql://postgres@127.0.0.1:{proxy.port}/faults"
            # No page cache: it would answer the page from memory; this is about timeouts.
            settings = make_settings(
                proxied,
                acquire_timeout=0.5,
                command_timeout=1.0,
                statement_timeout=1.0,
                page_cache_seconds=0,
            )
            with live_server(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
                assert client.get("/api/v1/pages/roof-repair/austin-tx").status_code == 200
                proxy.black_hole()
                for _ in range(5):
                    started = time.monotonic()
                    response = client.get("/api/v1/pages/roof-repair/austin-tx")
                    elapsed = time.monotonic() - started
                    assert response.status_code == 503
                    assert elapsed < 1.0 + 3.5 + 0.5, f"a request took {elapsed:.1f}s"
                assert client.get("/healthz").status_code == 200
                proxy.recover()
                until(
                    lambda: client.get("/api/v1/pages/roof-repair/austin-tx").status_code == 200,
                    10,
                    "a 200 after the proxy healed",
                )
        finally:
            proxy.close()


def test_a_slow_query_is_cancelled_on_the_server(fresh_dsn: str, tmp_path: Path) -> None:
    setup_site(fresh_dsn, tmp_path)
    settings = make_settings(fresh_dsn, statement_timeout=1.0, command_timeout=5.0)

    async def scenario(url: str) -> tuple[int, float, int]:
        blocker = await asyncpg.connect(fresh_dsn)
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE pages IN ACCESS EXCLUSIVE MODE")
                async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                    started = time.monotonic()
                    response = await client.get("/api/v1/pages/roof-repair/austin-tx")
                    elapsed = time.monotonic() - started
                waiting = await blocker.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'seo-engine' "
                    "AND state = 'active' AND datname = current_database()"
                )
        finally:
            await blocker.close()
        return response.status_code, elapsed, waiting

    with live_server(settings) as url:
        status, elapsed, still_running = asyncio.run(scenario(url))
    assert status == 503
    assert elapsed < 1.0 + 1.0
    assert still_running == 0, "the cancelled query must be gone from pg_stat_activity"


def test_pool_exhaustion_sheds_load_with_503_and_healthz_stays_fast(
    fresh_dsn: str, tmp_path: Path
) -> None:
    setup_site(fresh_dsn, tmp_path)
    environment = {
        "DATABASE_URL": fresh_dsn,
        "SEO_ENGINE_POOL_MIN_SIZE": "2",
        "SEO_ENGINE_POOL_MAX_SIZE": "2",
        "SEO_ENGINE_ACQUIRE_TIMEOUT": "0.5",
        "SEO_ENGINE_STATEMENT_TIMEOUT": "2",
    }

    async def scenario(url: str) -> tuple[list[tuple[int, float]], list[float]]:
        blocker = await asyncpg.connect(fresh_dsn)
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=0)
        try:
            async with (
                blocker.transaction(),
                httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client,
            ):
                await blocker.execute("LOCK TABLE pages IN ACCESS EXCLUSIVE MODE")

                async def one() -> tuple[int, float]:
                    response = await client.get("/api/v1/pages/roof-repair/austin-tx")
                    spent = float(response.headers["server-timing"].split("dur=")[1]) / 1000
                    return response.status_code, spent

                async def health() -> list[float]:
                    times = []
                    for _ in range(10):
                        started = time.monotonic()
                        assert (await client.get("/healthz")).status_code == 200
                        times.append(time.monotonic() - started)
                        await asyncio.sleep(0.1)  # probes spread over the burst, not a wait
                    return times

                burst = asyncio.gather(*(one() for _ in range(1000)))
                health_times = await health()
                return await burst, health_times
        finally:
            await blocker.close()

    with served(environment) as url:
        results, health_times = asyncio.run(scenario(url))
    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 503}
    assert statuses.count(503) >= 990
    # Time inside the app (Server-Timing): a request that got no connection gave up after the
    # acquire timeout; one that got a blocked connection after the statement timeout. The
    # margin is event-loop lag with ~500 requests in flight per worker on two cores.
    inside = sorted(elapsed for _, elapsed in results)
    lag = 1.5
    assert inside[len(inside) // 2] < 0.5 + lag
    assert inside[-1] < 0.5 + 2.0 + lag
    assert sorted(health_times)[len(health_times) // 2] < 0.5


async def waiting_on_a_lock(dsn: str) -> bool:
    """Whether a backend of the app is waiting for a lock in `dsn`'s database."""
    rows = await afetch(
        dsn,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'seo-engine' AND wait_event_type = 'Lock'",
    )
    return bool(rows[0]["n"])


async def refusing_connections(port: int) -> bool:
    """Whether the server on `port` has closed its listening socket (its shutdown began)."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


def test_sigterm_lets_a_request_finish_cuts_an_export_and_closes_the_pool(
    fresh_dsn: str, tmp_path: Path
) -> None:
    from tests.test_export import build_bundled_site

    build_bundled_site(fresh_dsn, tmp_path, 40)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": fresh_dsn, "SEO_ENGINE_SHUTDOWN_GRACE": "2"}
    with subprocess.Popen(
        [sys.executable, "-m", "seo_engine", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as server:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz").status_code == 200
            except httpx.TransportError:
                return False

        until(ready, 30, "the server to be ready")

        exited: list[float] = []
        watcher = threading.Thread(target=lambda: (server.wait(), exited.append(time.monotonic())))
        watcher.start()

        async def scenario() -> tuple[int, bool, float]:
            blocker = await asyncpg.connect(fresh_dsn)
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                export = await client.send(
                    client.build_request(
                        "GET", "/api/v1/export.ndjson", headers={"Accept-Encoding": "identity"}
                    ),
                    stream=True,
                )
                chunks = export.aiter_bytes()
                await anext(chunks)
                transaction = blocker.transaction()
                await transaction.start()
                await blocker.execute("LOCK TABLE services IN ACCESS EXCLUSIVE MODE")
                slow = asyncio.create_task(client.get("/api/v1/services"))
                await until_async(
                    functools.partial(waiting_on_a_lock, fresh_dsn), 10, "the request to block"
                )
                server.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                await until_async(
                    functools.partial(refusing_connections, port), 10, "the shutdown to begin"
                )
                await transaction.rollback()  # the in-flight request can now finish
                response = await slow
                cut = False
                try:
                    async for _ in chunks:
                        await asyncio.sleep(0.05)  # a slow reader: the export outlives the grace
                except httpx.HTTPError:
                    cut = True
                await blocker.close()
                return response.status_code, cut, signalled

        status, cut, signalled = asyncio.run(scenario())
        watcher.join(timeout=15)
        assert server.stderr is not None
        log = server.stderr.read()
        exited_after = exited[0] - signalled
    assert status == 200
    assert cut, "the export must be cut at the end of the grace period"
    assert exited_after < 2 + 3, log
    connections = asyncio.run(
        afetch(
            fresh_dsn,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'seo-engine' "
            "AND datname = current_database()",
        )
    )
    assert connections[0]["n"] == 0


def big_locations_file(tmp_path: Path) -> Path:
    """400,000 valid locations: a seed that takes seconds, long enough to be cut short."""
    from tests.seeding import LOCATION_HEADER

    big = tmp_path / "big.csv"
    with big.open("w") as out:
        out.write(LOCATION_HEADER + "\n")
        for n in range(400_000):
            out.write(f"{n + 100},town-{n},Town {n},Texas,TX,US,{n},30.{n % 1000:03d},-97.5,\n")
    return big


def test_a_crash_during_seed_commits_nothing_and_says_so(tmp_path: Path) -> None:
    with disposable_server(tmp_path) as server:
        setup_site(server.dsn, tmp_path, generate=False)
        big = big_locations_file(tmp_path)
        env = {**os.environ, "DATABASE_URL": server.dsn}
        with subprocess.Popen(
            [sys.executable, "-m", "seo_engine", "seed", "locations", str(big)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as seeding:
            # Crash once seed is copying rows in its transaction (the CLI starts slowly on a
            # busy machine); `query` is the backend's current or last statement.
            in_transaction = (
                "SELECT count(*) AS n FROM pg_stat_activity "
                "WHERE application_name = 'seo-engine' AND xact_start IS NOT NULL "
                "AND query LIKE 'COPY%'"
            )
            until(
                lambda: asyncio.run(afetch(server.dsn, in_transaction))[0]["n"],
                30,
                "seed to copy rows in its transaction",
            )
            assert seeding.poll() is None, "seed finished before the crash"
            server.crash()
            crashed = time.monotonic()
            _, errors = seeding.communicate(timeout=30)
            took = time.monotonic() - crashed
        assert seeding.returncode == 69
        assert took < 2.0
        assert "nothing was committed" in errors.splitlines()[-1]
        assert "Traceback" not in errors
        server.restart()
        rows = asyncio.run(afetch(server.dsn, "SELECT count(*) AS n FROM locations"))
        assert rows[0]["n"] == 4


def test_a_crash_during_generate_merges_nothing_and_a_rerun_converges(tmp_path: Path) -> None:
    from tests.test_export import build_bundled_site
    from tests.test_generate import pages

    with disposable_server(tmp_path) as server:
        build_bundled_site(server.dsn, tmp_path, 100)
        before = pages(server.dsn)
        site_file = Path(__file__).parent.parent / "seeds" / "site.toml"
        changed = site_file.read_text().replace(
            '"{{ service.name }} in {{ location.name }}, {{ location.area }}",',
            '"Best {{ service.name }} in {{ location.name }}",',
        )
        (tmp_path / "changed.toml").write_text(changed)
        assert cli(server.dsn, "sites", "add", str(tmp_path / "changed.toml")).exit_code == 0
        env = {**os.environ, "DATABASE_URL": server.dsn}
        with subprocess.Popen(
            [sys.executable, "-m", "seo_engine", "generate"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ) as generating:

            def staging() -> bool:  # the workers have staged pages: the merge is to come
                assert generating.poll() is None, "generate finished before the crash"
                stages = fetch(
                    server.dsn,
                    "SELECT tablename FROM pg_tables WHERE tablename LIKE 'generate_stage_%'",
                )
                if not stages:
                    return False
                staged = fetch(server.dsn, f"SELECT count(*) AS n FROM {stages[0]['tablename']}")
                return bool(staged[0]["n"])

            until(staging, 60, "generate to stage pages")
            server.crash()
            crashed = time.monotonic()
            _, errors = generating.communicate(timeout=30)
            took = time.monotonic() - crashed
        assert generating.returncode == 69, errors
        assert took < 2.0
        last = errors.strip().splitlines()[-1]
        assert "nothing was merged" in last or "nothing was committed" in last, last
        assert "Traceback" not in errors
        server.restart()
        assert pages(server.dsn) == before
        assert cli(server.dsn, "generate").exit_code == 0
        again = cli(server.dsn, "generate")
        assert f"0 updated, {len(before):,} unchanged" in again.stdout


# The job's backends are the test database's connections that the CLI names 'seo-engine'.
TERMINATE_RUNNING = """
SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'seo-engine'
  AND state = 'active' AND query LIKE $1
"""


@dataclass(frozen=True)
class Moment:
    """When to cut a job short: as soon as one of its backends runs a statement like
    `running`. With the `locked` table held by the test, that statement waits there."""

    running: str
    locked: str | None = None
    mode: str = "ACCESS EXCLUSIVE"  # the lock the test holds on `locked`


# Cut inside a transaction block, asyncpg reports the dead connection from the block's
# rollback (InterfaceError); a statement outside one raises the server's own error, e.g.
# AdminShutdownError, which is a PostgresError too. The locks make those moments last.
SEED_COPYING_ROWS = Moment('COPY "stage"%')
SEED_FINDING_ITS_SITE = Moment("%FROM sites%", locked="sites")
MERGER_COPYING_NEW_PAGES = Moment('COPY "pages"%')
WORKER_STAGING_CHANGED_PAGES = Moment('COPY "generate_stage_%')
MERGER_COUNTING_LOCATIONS = Moment("SELECT count(*) FROM locations%", locked="locations")
# After the commit, the job refreshes the table's statistics; a lock that lets writes by
# but not ANALYZE holds it there.
SEED_ANALYZING = Moment("ANALYZE locations%", locked="locations", mode="SHARE UPDATE EXCLUSIVE")
GENERATE_ANALYZING = Moment("ANALYZE pages%", locked="pages", mode="SHARE UPDATE EXCLUSIVE")


async def terminated(
    watcher: asyncpg.Connection, job: asyncio.subprocess.Process, running: str
) -> bool:
    assert job.returncode is None, f"the job ended before it ran {running}"
    return any(row["terminated"] for row in await watcher.fetch(TERMINATE_RUNNING, running))


def run_cut_short(dsn: str, moment: Moment, *args: str) -> tuple[int, str]:
    """Run `seo-engine ARGS`, terminate its backend(s) at `moment`; exit code and stderr."""

    async def scenario() -> tuple[int, str]:
        watcher = await asyncpg.connect(dsn)
        blocker = await asyncpg.connect(dsn)
        job: asyncio.subprocess.Process | None = None
        try:
            lock = blocker.transaction()
            await lock.start()
            if moment.locked is not None:
                await blocker.execute(f"LOCK TABLE {moment.locked} IN {moment.mode} MODE")
            job = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "seo_engine", *args),
                env={**os.environ, "DATABASE_URL": dsn},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            cut = functools.partial(terminated, watcher, job, moment.running)
            await until_async(cut, 60, f"the job to run {moment.running}")
            await lock.rollback()
            async with asyncio.timeout(60):
                _, errors = await job.communicate()
            assert job.returncode is not None
            return job.returncode, errors.decode()
        finally:
            if job is not None and job.returncode is None:
                job.kill()  # a job that hangs on its dead connection must not hang the run
                await job.communicate()
            await watcher.close()
            await blocker.close()

    return asyncio.run(scenario())


def assert_lost_connection(code: int, errors: str) -> None:
    assert code == 69, errors
    assert "Traceback" not in errors
    last = errors.strip().splitlines()[-1]
    assert last.startswith("error: lost the database connection"), last
    assert "nothing was merged" in last or "nothing was committed" in last, last


@pytest.mark.parametrize(
    "moment",
    [SEED_COPYING_ROWS, SEED_FINDING_ITS_SITE],
    ids=["copying-rows", "finding-its-site"],
)
def test_a_backend_terminated_during_seed_exits_69_and_commits_nothing(
    fresh_dsn: str, tmp_path: Path, moment: Moment
) -> None:
    setup_site(fresh_dsn, tmp_path, generate=False)
    big = big_locations_file(tmp_path)
    before = fetch(fresh_dsn, "SELECT * FROM locations ORDER BY id")
    code, errors = run_cut_short(fresh_dsn, moment, "seed", "locations", str(big))
    assert_lost_connection(code, errors)
    assert fetch(fresh_dsn, "SELECT * FROM locations ORDER BY id") == before


def stale_bundled_site(dsn: str, tmp_path: Path) -> list[tuple[str, bytes, object]]:
    """The bundled site generated for 100 locations, then given 100 more and a new title
    template: the next generate renders new pages (the merger copies them into `pages`)
    and changed ones (the workers copy them into the stage). Returns the stored pages."""
    from tests.test_export import build_bundled_site
    from tests.test_generate import pages

    build_bundled_site(dsn, tmp_path, 100)
    more = cli(dsn, "seed", "locations", str(subset_of_bundled_locations(tmp_path, 200)))
    assert more.exit_code == 0, more.output
    site_file = Path(__file__).parent.parent / "seeds" / "site.toml"
    changed = site_file.read_text().replace(
        '"{{ service.name }} in {{ location.name }}, {{ location.area }}",',
        '"Best {{ service.name }} in {{ location.name }}",',
    )
    (tmp_path / "changed.toml").write_text(changed)
    assert cli(dsn, "sites", "add", str(tmp_path / "changed.toml")).exit_code == 0
    return pages(dsn)


@pytest.mark.parametrize(
    "moment",
    [MERGER_COPYING_NEW_PAGES, WORKER_STAGING_CHANGED_PAGES, MERGER_COUNTING_LOCATIONS],
    ids=["merger-copying-new-pages", "worker-staging-changed-pages", "merger-counting-locations"],
)
def test_a_backend_terminated_during_generate_exits_69_and_merges_nothing(
    fresh_dsn: str, tmp_path: Path, moment: Moment
) -> None:
    from tests.test_generate import pages

    before = stale_bundled_site(fresh_dsn, tmp_path)
    code, errors = run_cut_short(fresh_dsn, moment, "generate")
    assert_lost_connection(code, errors)
    assert pages(fresh_dsn) == before


# A COPY source of one 64 MB chunk: asyncpg writes it at once and waits for its send buffer
# to drain, which is where a dead connection used to leave it waiting for good.
TERMINATE_COPYING_TEST = """
SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'copyguard-test'
  AND state = 'active' AND query LIKE 'COPY%'
"""


async def test_a_copy_whose_backend_is_terminated_fails_at_once(fresh_dsn: str) -> None:
    from seo_engine.db import copyguard

    connection = await asyncpg.connect(
        fresh_dsn, server_settings={"application_name": "copyguard-test"}
    )
    watcher = await asyncpg.connect(fresh_dsn)

    async def one_big_chunk() -> AsyncIterator[bytes]:
        yield b"a line of text to copy\n" * 3_000_000

    async def cut() -> bool:
        return any(row["terminated"] for row in await watcher.fetch(TERMINATE_COPYING_TEST))

    try:
        await connection.execute("CREATE TEMP TABLE copied (line text)")
        copy = connection.copy_to_table("copied", source=one_big_chunk())
        copying = asyncio.ensure_future(copyguard.guarded(connection, copy))
        await until_async(cut, 10, "the COPY to start")
        with pytest.raises(asyncpg.ConnectionDoesNotExistError):
            async with asyncio.timeout(10):
                await copying
    finally:
        await watcher.close()
        await connection.close()


def test_a_backend_terminated_after_seed_committed_still_reports_the_load(
    fresh_dsn: str, tmp_path: Path
) -> None:
    setup_site(fresh_dsn, tmp_path, generate=False)
    added = "5,temple-tx,Temple,Texas,TX,US,82073,31.09823,-97.34278,America/Chicago"
    more = write(tmp_path / "more.csv", LOCATION_HEADER, [*LOCATIONS, added])
    code, errors = run_cut_short(fresh_dsn, SEED_ANALYZING, "seed", "locations", str(more))
    assert code == 0, errors
    assert "nothing was committed" not in errors
    assert "statistics were not refreshed" in errors
    stored = fetch(fresh_dsn, "SELECT slug FROM locations ORDER BY id")
    assert [row["slug"] for row in stored][-1] == "temple-tx"


def test_a_backend_terminated_after_generate_committed_still_reports_the_merge(
    fresh_dsn: str, tmp_path: Path
) -> None:
    from tests.test_generate import pages

    before = stale_bundled_site(fresh_dsn, tmp_path)
    code, errors = run_cut_short(fresh_dsn, GENERATE_ANALYZING, "generate")
    assert code == 0, errors
    assert "nothing was merged" not in errors
    assert "statistics were not refreshed" in errors
    assert len(pages(fresh_dsn)) > len(before)
