"""The validator index: every live page's current ETag known in each worker, so that a
conditional request for a page the worker never served is answered 304 from memory, and
forgotten as soon as pages change (LISTEN/NOTIFY)."""

from __future__ import annotations

import functools
import logging
import random
from array import array
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from seo_engine import etags
from seo_engine.serve import html, validator_index
from seo_engine.serve.app import create_app
from seo_engine.serve.validator_index import ValidatorIndex, fingerprint
from tests.conftest import _client, make_settings
from tests.seeding import afetch
from tests.test_hotpath import SETTLE_SECONDS, wait_for_listener
from tests.waiting import until_async

PAGE = "/gutter-cleaning/waco-tx"
DOCUMENT = "/api/v1/pages/gutter-cleaning/waco-tx"


@pytest.fixture
def app(site_dsn: str) -> FastAPI:
    return create_app(make_settings(site_dsn, page_cache_seconds=300))


@pytest.fixture
async def client(app: FastAPI, fresh_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(app):
        await wait_for_listener(fresh_dsn)
        yield client


async def built(index: ValidatorIndex) -> None:
    async def ready() -> bool:
        return index.ready()

    await until_async(ready, SETTLE_SECONDS)


async def tags(dsn: str, path: str) -> tuple[str, str]:
    """The page's ETag and its document's, from the stored content hash."""
    rows = await afetch(dsn, "SELECT content_hash FROM pages WHERE path = $1", path)
    return html.page_etag(rows[0]["content_hash"]), etags.of_document(rows[0]["content_hash"])


async def test_the_index_holds_exactly_the_live_pages_validators(
    app: FastAPI, client: httpx.AsyncClient, fresh_dsn: str
) -> None:
    index: ValidatorIndex = app.state.validators
    assert not index.ready(), "built on first demand, not at start"
    await built(index)
    rows = await afetch(
        fresh_dsn, "SELECT site_id, path, content_hash FROM pages WHERE deleted_at IS NULL"
    )
    assert len(rows) == len(index) == 8
    for row in rows:
        site, path, current = row["site_id"], row["path"], row["content_hash"].hex()
        assert index.holds(site, path, current), path
        assert not index.holds(site, path, "0" * len(current))
        assert not index.holds(site + 1, path, current)
        assert not index.holds(site, path + "x", current)
    assert fingerprint(1, "/a", "00") != fingerprint(1, "/a", "01")


def test_sorted_fingerprints_find_exactly_their_values_in_every_bucket() -> None:
    low, high = -(1 << 63), (1 << 63) - 1
    shift = 64 - validator_index.BUCKET_BITS
    edges = [low, low + 1, -1, 0, 1, high - 1, high, (5 << shift) - 1, 5 << shift, -(3 << shift)]
    rng = random.Random(7)
    values = sorted({*edges, *(rng.randint(low, high) for _ in range(20_000))})
    stored = values[::2]
    index = validator_index.SortedFingerprints(array("q", stored))
    assert len(index) == len(stored)
    held = set(stored)
    for value in values + [v + 1 for v in values if v < high]:
        assert (value in index) == (value in held), value
    assert 0 not in validator_index.SortedFingerprints(array("q"))


async def test_a_page_the_worker_never_served_is_answered_304_from_the_index(
    app: FastAPI, client: httpx.AsyncClient, fresh_dsn: str
) -> None:
    await client.get("/roof-repair/austin-tx", headers={"if-none-match": '"x"'})
    await built(app.state.validators)
    page_tag, document_tag = await tags(fresh_dsn, PAGE)
    # Removed behind the app's back, without NOTIFY: the index still calls the tags
    # current, which shows the answer came from memory, not from the database.
    await afetch(fresh_dsn, "UPDATE pages SET deleted_at = now() WHERE path = $1", PAGE)
    for url, tag, cache_control in (
        (PAGE, page_tag, "s-maxage=86400"),
        (DOCUMENT, document_tag, "s-maxage=300"),
    ):
        response = await client.get(url, headers={"if-none-match": f'"other", {tag}'})
        assert response.status_code == 304 and response.content == b"", url
        assert response.headers["etag"] == tag
        assert cache_control in response.headers["cache-control"]
        assert response.headers["vary"] == "Accept-Encoding"
        weak = await client.get(url, headers={"if-none-match": f"W/{tag}"})
        assert weak.status_code == 304 and weak.headers["etag"] == tag, "weak comparison"
    await afetch(fresh_dsn, "SELECT pg_notify('seo_engine_changes', '')")

    async def gone() -> bool:
        response = await client.get(PAGE, headers={"if-none-match": page_tag})
        return response.status_code == 404

    await until_async(gone, SETTLE_SECONDS)


async def test_a_stale_or_foreign_tag_gets_the_page(
    app: FastAPI, client: httpx.AsyncClient, fresh_dsn: str
) -> None:
    await client.get(PAGE, headers={"if-none-match": '"x"'})
    await built(app.state.validators)
    page_tag, document_tag = await tags(fresh_dsn, PAGE)
    stale_page = page_tag.replace(page_tag[1:9], "00000000")
    old_templates = page_tag.rpartition("-")[0] + '-000000000000"'
    for headers in (
        {"if-none-match": stale_page},
        {"if-none-match": old_templates},
        {"if-none-match": document_tag},  # the document's tag is not the page's
        {"if-none-match": '"", W/, ,"'},
        {"if-none-match": page_tag.upper()},
    ):
        response = await client.get(PAGE, headers=headers)
        assert response.status_code == 200, headers
        assert response.headers["etag"] == page_tag
    everything = await client.get(PAGE, headers={"if-none-match": "*"})
    assert everything.status_code == 304
    missing = await client.get("/roof-repair/nowhere-tx", headers={"if-none-match": page_tag})
    assert missing.status_code == 404


async def test_over_its_page_limit_304s_are_checked_in_the_database(
    site_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(site_dsn, page_cache_seconds=300, validator_index_pages=7)
    app = create_app(settings)
    page_tag, _ = await tags(site_dsn, PAGE)
    with caplog.at_level(logging.WARNING, logger="seo_engine.serve.validator_index"):

        async def refused(client: httpx.AsyncClient) -> bool:
            # each conditional request asks for the index; the database answers it
            response = await client.get(PAGE, headers={"if-none-match": page_tag})
            assert response.status_code == 304
            return "more than 7 live pages" in caplog.text

        async for client in _client(app):
            await wait_for_listener(site_dsn)  # its first clear() would discard a build
            await until_async(functools.partial(refused, client), SETTLE_SECONDS)
            assert not app.state.validators.ready()
            response = await client.get(DOCUMENT, headers={"if-none-match": '"x"'})
            assert response.status_code == 200


async def test_without_a_page_cache_there_is_no_index(site_dsn: str) -> None:
    app = create_app(make_settings(site_dsn, page_cache_seconds=0))
    page_tag, _ = await tags(site_dsn, PAGE)
    async for client in _client(app):
        response = await client.get(PAGE, headers={"if-none-match": page_tag})
        assert response.status_code == 304  # checked in the database
        assert not app.state.validators.ready()


async def test_a_change_without_a_notify_drops_the_index_within_seconds(
    app: FastAPI, client: httpx.AsyncClient, fresh_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a transaction pooler NOTIFY never arrives; PostgreSQL's count of rows
    written to `pages` still changes, and the index checks it every VERIFY_SECONDS."""
    monkeypatch.setattr(validator_index, "VERIFY_SECONDS", 0.2)
    await client.get(PAGE, headers={"if-none-match": '"x"'})
    await built(app.state.validators)
    page_tag, _ = await tags(fresh_dsn, "/roof-repair/waco-tx")
    rows = await afetch(fresh_dsn, "SELECT site_id, content_hash FROM pages WHERE path = $1", PAGE)
    removed = (rows[0]["site_id"], PAGE, rows[0]["content_hash"].hex())
    assert app.state.validators.holds(*removed)
    await afetch(fresh_dsn, "UPDATE pages SET deleted_at = now() WHERE path = $1", PAGE)

    async def forgotten() -> bool:
        response = await client.get("/roof-repair/waco-tx", headers={"if-none-match": page_tag})
        assert response.status_code == 304  # from the index, or the database meanwhile
        return not app.state.validators.holds(*removed)

    await until_async(forgotten, SETTLE_SECONDS)
    await built(app.state.validators)  # rebuilt from the pages as they are now
    assert not app.state.validators.holds(*removed)


async def test_a_lost_listener_drops_the_index_until_it_listens_again(
    app: FastAPI, client: httpx.AsyncClient, fresh_dsn: str
) -> None:
    """Without its LISTEN connection a worker would not hear of changes: no index then."""
    index: ValidatorIndex = app.state.validators
    await client.get(PAGE, headers={"if-none-match": '"x"'})
    await built(index)
    await afetch(
        fresh_dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'",
    )

    async def dropped() -> bool:
        return len(index) == 0 and not index.ready()

    await until_async(dropped, SETTLE_SECONDS)
    await wait_for_listener(fresh_dsn)  # reconnected (after changes.RECONNECT_SECONDS)
    await built(index)
