"""Read replicas, for real: a primary and a streaming standby of the tests' own on loopback
(tests/standby.py). Reads are served by the standby; one that falls behind, or stops under
load, is left for the primary (no 500s); it is taken back when it answers and catches up;
a sync token issued on the standby misses nothing; a generate can wait for the replay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from click.testing import Result

from seo_engine.cli import app
from seo_engine.db import replicas
from seo_engine.serve.app import create_app
from seo_engine.settings import Settings
from tests.conftest import _client, make_settings
from tests.seeding import LOCATION_HEADER, LOCATIONS, cli, runner, setup_site, write
from tests.standby import StandbyPair, caught_up, wait_until_caught_up

HOST = {"host": "test.example"}
RETITLE = "UPDATE pages SET title = $1 WHERE path = $2"
MAX_LAG = 2.0
# How long after a commit a page may still be answered as it was: the lag limit, one check
# to notice it was passed, one more for the check's own round trips, and a request; with
# two seconds for a loaded CI machine (two cores, two servers, the app and the CLI).
STALE_BOUND = MAX_LAG + 2 * replicas.CHECK_SECONDS + 2.0


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandbyPair]:
    standby_pair = StandbyPair()
    try:
        assert cli(standby_pair.primary_url, "db", "migrate").exit_code == 0
        setup_site(standby_pair.primary_url, tmp_path_factory.mktemp("replicas"))
        wait_until_caught_up(standby_pair)
        yield standby_pair
    finally:
        standby_pair.close()


def replicated(pair: StandbyPair, **overrides: object) -> Settings:
    """The app's settings on the pair: reads on the standby (named as the README shows,
    with target_session_attrs), the test's lag limit, no page cache, no publishing clock."""
    values: dict[str, object] = {
        "read_database_url": pair.standby_url + "&target_session_attrs=prefer-standby",
        "replica_max_lag": MAX_LAG,
        "page_cache_seconds": 0,
        "publish_interval": 0,
    }
    return make_settings(pair.primary_url, **(values | overrides))


@pytest.fixture
async def client(pair: StandbyPair) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the pair (each request reads: no page cache)."""
    async for each in _client(create_app(replicated(pair))):
        yield each
    await pair.resume_replay()


def replicated_cli(pair: StandbyPair, *args: str) -> Result:
    environment = {
        "DATABASE_URL": pair.primary_url,
        "SEO_ENGINE_READ_DATABASE_URL": pair.standby_url,
    }
    return runner.invoke(app, list(args), env=environment)


def seed(pair: StandbyPair, locations: Path) -> Result:
    return cli(pair.primary_url, "seed", "locations", str(locations), "--prune")


async def replica_state(client: httpx.AsyncClient) -> str:
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    [replica] = ready.json()["replicas"]
    return str(replica["state"])


async def wait_for_state(client: httpx.AsyncClient, state: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while (now := await replica_state(client)) != state:
        assert time.monotonic() < deadline, f"replica still {now!r}, not {state!r}"
        await asyncio.sleep(0.2)


async def execute(dsn: str, statement: str, *arguments: object) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement, *arguments)
    finally:
        await connection.close()


async def title_of(client: httpx.AsyncClient, path: str) -> str:
    listed = await client.get("/api/v1/pages", params={"limit": 100}, headers=HOST)
    assert listed.status_code == 200, listed.text
    [item] = [item for item in listed.json()["items"] if item["path"] == path]
    return str(item["title"])


async def test_reads_come_from_the_standby_until_it_falls_behind(
    pair: StandbyPair, client: httpx.AsyncClient
) -> None:
    path = "/roof-repair/round-rock-tx"
    assert await replica_state(client) == "in use"
    before = await title_of(client, path)
    figures = (await client.get("/metrics")).text
    assert f'seo_engine_db_replica_in_use{{replica="{pair.standby_name}"}} 1.0' in figures
    assert f'seo_engine_db_reads_total{{server="{pair.standby_name}"}}' in figures
    await pair.pause_replay()
    await execute(pair.primary_url, RETITLE, "Edited", path)
    committed = time.monotonic()
    # The standby has not replayed the edit, and it serves the reads: the old title.
    assert await title_of(client, path) == before
    # Past the lag limit the primary serves them: the new title, within the bound.
    while (title := await title_of(client, path)) == before:
        assert time.monotonic() - committed < STALE_BOUND
        await asyncio.sleep(0.1)
    assert title == "Edited"
    assert await replica_state(client) == "behind"
    # Replayed again, the standby is taken back.
    await pair.resume_replay()
    await wait_for_state(client, "in use")
    assert await title_of(client, path) == "Edited"
    await execute(pair.primary_url, RETITLE, before, path)
    await caught_up(pair)


async def test_a_sync_token_issued_on_the_standby_misses_nothing(
    pair: StandbyPair, client: httpx.AsyncClient
) -> None:
    """On a standby pg_current_snapshot() lists no running transaction: a token made of it
    would call a transaction still open on the primary seen, and skip its change."""
    path = "/roof-repair/waco-tx"
    writer = await asyncpg.connect(pair.primary_url)
    try:
        transaction = writer.transaction()
        await transaction.start()
        await writer.execute(RETITLE, "Open", path)
        # Another commit after it, so that its record reaches the standby; replayed there.
        await execute(pair.primary_url, "SELECT pg_current_xact_id()")
        await caught_up(pair)
        assert await replica_state(client) == "in use"
        first = await client.get("/api/v1/pages", headers=HOST)
        token = first.json()["sync_token"]
        await transaction.commit()
    finally:
        await writer.close()
    await caught_up(pair)
    resumed = await client.get("/api/v1/pages", params={"sync": token}, headers=HOST)
    assert resumed.status_code == 200, resumed.text
    assert path in [item["path"] for item in resumed.json()["items"]]
    assert await replica_state(client) == "in use"  # both reads came from the standby


async def test_a_list_continues_on_a_server_that_has_what_its_first_page_saw(
    pair: StandbyPair,
) -> None:
    """Two workers behind one load balancer: the first page read on the primary, the next
    on a worker whose replica is behind (but within its lag limit). Read there, the next
    page would hold the old title while the token says it was seen: missed for good."""
    on_primary = make_settings(pair.primary_url, page_cache_seconds=0, publish_interval=0)
    on_replica = replicated(pair, replica_max_lag=600)  # a paused standby stays in use
    async for first_worker in _client(create_app(on_primary)):
        async for second_worker in _client(create_app(on_replica)):
            everything = (await first_worker.get("/api/v1/pages", headers=HOST)).json()
            last, before = everything["items"][-1]["path"], everything["items"][-1]["title"]
            await pair.pause_replay()
            await execute(pair.primary_url, RETITLE, "New", last)
            first = (await first_worker.get("/api/v1/pages?limit=2", headers=HOST)).json()
            assert await title_of(second_worker, last) != "New"  # the standby is behind
            items = []
            following = first["next"]
            while following:
                response = await second_worker.get(following, headers=HOST)
                assert response.status_code == 200, response.text
                items += response.json()["items"]
                following = response.json()["next"]
            [item] = [item for item in items if item["path"] == last]
            assert item["title"] == "New"
            await pair.resume_replay()
            await execute(pair.primary_url, RETITLE, before, last)
    await caught_up(pair)


async def test_a_standby_stopped_under_load_leaves_reads_to_the_primary(
    pair: StandbyPair, client: httpx.AsyncClient
) -> None:
    answers: list[httpx.Response] = []
    stopped = asyncio.Event()
    after_stop: list[int] = []

    async def keep_reading(path: str) -> None:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            response = await client.get(path, headers=HOST)
            answers.append(response)
            if stopped.is_set():
                after_stop.append(response.status_code)

    async def stop_midway() -> None:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(pair.stop_standby)
        await asyncio.sleep(replicas.CHECK_SECONDS + 0.5)
        stopped.set()

    paths = ["/roof-repair/austin-tx", "/api/v1/pages?limit=3", "/api/v1/pages/roof-repair/waco-tx"]
    await asyncio.gather(stop_midway(), *(keep_reading(path) for path in paths * 2))
    statuses = {response.status_code for response in answers}
    assert statuses <= {200, 503}, statuses
    for response in answers:
        if response.status_code == 503:
            assert response.headers["retry-after"]
    assert after_stop and set(after_stop) == {200}  # the primary answers them all
    assert await replica_state(client) == "unreachable"
    await asyncio.to_thread(pair.start_standby)
    await wait_for_state(client, "in use")
    page = await client.get("/roof-repair/austin-tx", headers=HOST)
    assert page.status_code == 200


async def test_a_tombstone_outlives_its_generate_by_at_most_the_bound(
    pair: StandbyPair, tmp_path: Path
) -> None:
    """With the page cache on: the generate's notice clears it at once, the lagging
    standby's answer is cached again, and taking the standby out of use clears it again."""
    settings = replicated(pair, page_cache_seconds=60)
    path = "/roof-repair/waco-tx"
    # Without replicas configured there is nothing to wait for: a usage error, at once.
    unconfigured = await asyncio.to_thread(
        cli, pair.primary_url, "generate", "--wait-for-replicas", "1"
    )
    assert unconfigured.exit_code == 2, unconfigured.output
    async for client in _client(create_app(settings)):
        assert (await client.get(path, headers=HOST)).status_code == 200  # now cached
        await pair.pause_replay()
        try:
            without_waco = [row for row in LOCATIONS if "waco" not in row]
            locations = write(tmp_path / "locations.csv", LOCATION_HEADER, without_waco)
            assert (await asyncio.to_thread(seed, pair, locations)).exit_code == 0
            assert (
                await asyncio.to_thread(replicated_cli, pair, "generate", "--workers", "1")
            ).exit_code == 0
            committed = time.monotonic()
            while (status := (await client.get(path, headers=HOST)).status_code) == 200:
                assert time.monotonic() - committed < STALE_BOUND
                await asyncio.sleep(0.1)
            assert status in (404, 410)
            # The standby has not replayed it: a generate that waits for it says so.
            waited = await asyncio.to_thread(
                replicated_cli, pair, "generate", "--workers", "1", "--wait-for-replicas", "1"
            )
            assert waited.exit_code == 75, waited.output
            assert f"{pair.standby_name} (behind)" in waited.output
        finally:
            await pair.resume_replay()
    # Put Waco back; the generate reports done once the standby has replayed it.
    locations = write(tmp_path / "locations.csv", LOCATION_HEADER, LOCATIONS)
    assert (await asyncio.to_thread(seed, pair, locations)).exit_code == 0
    result = await asyncio.to_thread(
        replicated_cli, pair, "generate", "--workers", "1", "--wait-for-replicas", "30"
    )
    assert result.exit_code == 0, result.output
    assert f"replayed by 1 read replica(s): {pair.standby_name}" in result.output
