"""Batched page lookups: concurrent requests share queries, and nobody waits forever."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx
import pytest

from seo_engine.db import database
from seo_engine.serve.lookups import Batcher
from tests.seeding import LOCATIONS, SERVICES


class Squares:
    """A fetch function that answers n -> n * n (odd numbers only) and records its calls;
    `running` is set once a fetch has started."""

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.calls: list[list[int]] = []
        self.delay = delay
        self.error = error
        self.running = asyncio.Event()

    async def __call__(self, keys: list[int]) -> Mapping[int, int]:
        self.calls.append(keys)
        self.running.set()
        await asyncio.sleep(self.delay)  # a slow database: the behaviour under test
        if self.error is not None:
            raise self.error
        return {key: key * key for key in keys if key % 2}


async def test_concurrent_lookups_share_one_fetch_with_each_key_once() -> None:
    fetch = Squares()
    batcher: Batcher[int, int] = Batcher(fetch, wait_timeout=5)
    results = await asyncio.gather(*(batcher.get(key) for key in [1, 2, 3, 3, 1]))
    assert results == [1, None, 9, 9, 1]
    assert fetch.calls == [[1, 2, 3]]


async def test_lookups_arriving_during_a_fetch_go_together_in_the_next() -> None:
    fetch = Squares(delay=0.05)
    batcher: Batcher[int, int] = Batcher(fetch, wait_timeout=5)
    first = asyncio.ensure_future(batcher.get(1))
    await fetch.running.wait()
    later = await asyncio.gather(*(batcher.get(key) for key in (3, 5, 7)))
    assert (await first, later) == (1, [9, 25, 49])
    assert fetch.calls == [[1], [3, 5, 7]]


async def test_a_lookup_that_cannot_reach_the_database_in_time_is_told_so() -> None:
    fetch = Squares(delay=0.5)
    batcher: Batcher[int, int] = Batcher(fetch, wait_timeout=0.1)
    first = asyncio.ensure_future(batcher.get(1))
    await fetch.running.wait()
    with pytest.raises(database.DatabaseUnavailable, match="busy"):
        await batcher.get(3)  # stuck behind the slow fetch longer than its wait allows
    assert await first == 1
    assert fetch.calls == [[1]]


async def test_a_failed_fetch_fails_each_waiter_with_its_own_503_error() -> None:
    fetch = Squares(error=ConnectionResetError())
    batcher: Batcher[int, int] = Batcher(fetch, wait_timeout=5)
    results = await asyncio.gather(*(batcher.get(k) for k in (1, 3)), return_exceptions=True)
    assert all(isinstance(r, database.DatabaseUnavailable) for r in results)
    assert results[0] is not results[1]


async def test_a_cancelled_lookup_leaves_the_others_alone() -> None:
    fetch = Squares(delay=0.05)
    batcher: Batcher[int, int] = Batcher(fetch, wait_timeout=5)
    first = asyncio.ensure_future(batcher.get(1))
    await fetch.running.wait()
    cancelled = asyncio.ensure_future(batcher.get(3))
    kept = asyncio.ensure_future(batcher.get(5))
    await asyncio.sleep(0)  # one turn of the loop, not a wait: both lookups are now queued
    cancelled.cancel()
    assert (await first, await kept) == (1, 25)
    assert fetch.calls == [[1], [5]]


async def test_concurrent_requests_each_get_their_own_page(site_client: httpx.AsyncClient) -> None:
    services = [row.split(",")[1] for row in SERVICES]
    locations = [row.split(",")[1] for row in LOCATIONS]
    wanted = [(s, loc) for s in services for loc in locations] * 3 + [("roof-repair", "nowhere")]
    responses = await asyncio.gather(
        *(site_client.get(f"/api/v1/pages/{s}/{loc}") for s, loc in wanted)
    )
    for (service, location), response in zip(wanted, responses, strict=True):
        if location == "nowhere":
            assert response.status_code == 404
            continue
        assert response.json()["path"] == f"/{service}/{location}"
    pages = await asyncio.gather(*(site_client.get(f"/{s}/{loc}") for s, loc in wanted[:-1]))
    assert all(
        f'href="https://test.example/{s}/{loc}"' in page.text
        for (s, loc), page in zip(wanted, pages, strict=False)
    )
