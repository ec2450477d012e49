"""The answering core: the hot path in front of FastAPI and FastAPI's own routes give the
same status, headers and body for every kind of page and document request, whichever of
the worker's caches (page cache, validator index, the database) answered it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from seo_engine.serve.app import create_app
from seo_engine.serve.hotpath import HotPaths
from tests.conftest import _client, make_settings
from tests.test_validator_index import built

DOCUMENT = "/api/v1/pages/roof-repair/austin-tx"
PAGE = "/roof-repair/austin-tx"
MISSING = {DOCUMENT: "/api/v1/pages/roof-repair/nowhere-tx", PAGE: "/roof-repair/nowhere-tx"}
QUERIES = ("", "?site=testsite")
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"


@dataclass(frozen=True)
class Seen:
    status: int
    headers: tuple[tuple[str, str], ...]  # every header but Server-Timing, sorted
    body: bytes  # as sent (still compressed)


async def see(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]) -> Seen:
    # The same request id for both: it is echoed (observe.py), else made up per request.
    headers = {**headers, "x-request-id": "alike"}
    async with client.stream(method, url, headers=headers) as response:
        body = b"".join([part async for part in response.aiter_raw()])
    assert "server-timing" in response.headers, url
    kept = sorted((k, v) for k, v in response.headers.multi_items() if k != "server-timing")
    return Seen(response.status_code, tuple(kept), body)


async def hot_and_routed(dsn: str, page_cache_seconds: int) -> AsyncIterator[tuple[FastAPI, ...]]:
    """Two workers over the same pages: one with the hot path, one with routes only; with
    the page cache (and so the validator index) or without (304s checked in the database)."""
    settings = make_settings(dsn, page_cache_seconds=page_cache_seconds)
    hot = create_app(settings)
    routed = create_app(settings, hot_paths=False)
    async for hot_client in _client(hot):
        async for routed_client in _client(routed):
            hot.state.client, routed.state.client = hot_client, routed_client
            yield hot, routed


async def validators(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    response = await client.get(url, headers={"accept-encoding": "identity"})
    assert response.status_code == 200, url
    return {"etag": response.headers["etag"], "modified": response.headers["last-modified"]}


def requests(url: str, tags: dict[str, str]) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Every kind of request the matrix sends for one URL: name -> (method, url, headers)."""
    plain = {"accept-encoding": "identity"}
    path, _, query = url.partition("?")
    missing = MISSING[path] + (f"?{query}" if query else "")
    return {
        "200": ("GET", url, plain),
        "HEAD": ("HEAD", url, plain),
        "304 by If-None-Match": ("GET", url, {**plain, "if-none-match": tags["etag"]}),
        "304 by If-Modified-Since": ("GET", url, {**plain, "if-modified-since": tags["modified"]}),
        "weak W/ tag": ("GET", url, {**plain, "if-none-match": f'"other", W/{tags["etag"]}'}),
        "*": ("GET", url, {**plain, "if-none-match": "*"}),
        "stale tag": ("GET", url, {**plain, "if-none-match": '"0000"'}),
        "gzip": ("GET", url, {"accept-encoding": "gzip"}),
        "HEAD gzip": ("HEAD", url, {"accept-encoding": "gzip"}),
        "404": ("GET", missing, plain),
        "HEAD 404": ("HEAD", missing, plain),
    }


async def test_the_hot_path_and_the_routes_answer_every_request_alike(site_dsn: str) -> None:
    for page_cache_seconds in (60, 0):  # with the page cache and validator index, without
        async for hot, routed in hot_and_routed(site_dsn, page_cache_seconds):
            await answers_alike(hot, routed, page_cache_seconds)


async def answers_alike(hot: FastAPI, routed: FastAPI, page_cache_seconds: int) -> None:
    clients = {"hot path": hot.state.client, "route": routed.state.client}
    expected_status = {"304 by If-None-Match": 304, "304 by If-Modified-Since": 304}
    expected_status |= {"weak W/ tag": 304, "*": 304, "404": 404, "HEAD 404": 404}
    for path in (DOCUMENT, PAGE):
        tags = await validators(hot.state.client, path)
        for query in QUERIES:
            cases = requests(path + query, tags)
            # Round 1 finds every cache cold; round 2 is answered from the page cache and,
            # once built, the validator index.
            answers: dict[str, dict[str, list[Seen]]] = {name: {} for name in cases}
            for round_number in (1, 2):
                if round_number == 2 and page_cache_seconds:
                    for app in (hot, routed):
                        await built(app.state.validators)
                for name, (method, url, headers) in cases.items():
                    for who, client in clients.items():
                        seen = await see(client, method, url, headers)
                        answers[name].setdefault(who, []).append(seen)
            for name, by_whom in answers.items():
                every = [seen for seen_list in by_whom.values() for seen in seen_list]
                where = f"{name} of {path + query}"
                assert every[0].status == expected_status.get(name, 200), where
                for seen in every[1:]:
                    assert seen == every[0], where


async def test_a_database_outage_is_the_same_503_from_the_hot_path_and_the_routes(
    fresh_dsn: str, tmp_path: Path
) -> None:
    settings = make_settings(UNREACHABLE, page_cache_seconds=0, acquire_timeout=0.5)
    seen: dict[str, list[Seen]] = {}
    for hot_paths in (True, False):
        async for client in _client(create_app(settings, hot_paths=hot_paths)):
            for url in (DOCUMENT, DOCUMENT + "?site=testsite", PAGE, PAGE + "?site=testsite"):
                for method in ("GET", "HEAD"):
                    response = await see(client, method, url, {"accept-encoding": "gzip"})
                    seen.setdefault(f"{method} {url}", []).append(response)
    for request, (hot, routed) in seen.items():
        assert hot == routed, request
        assert hot.status == 503, request
        assert ("retry-after", "1") in hot.headers
        assert ("cache-control", "no-store") in hot.headers
    body = seen[f"GET {DOCUMENT}"][0].body
    assert b"the database is unavailable; try again shortly" in body
    assert b"Error" not in body, "no internal exception is named"


async def test_document_urls_the_api_hands_out_are_taken_by_the_hot_path(site_dsn: str) -> None:
    """The URLs in list items and in a page's `Link: rel=alternate` carry ?site=: the hot
    path answers them itself, without the FastAPI stack behind it (here a stand-in that
    answers 599 to anything it is given)."""
    async for hot, _ in hot_and_routed(site_dsn, 60):
        await taken_by_the_hot_path(hot)


async def taken_by_the_hot_path(hot: FastAPI) -> None:
    listed = (await hot.state.client.get("/api/v1/pages?limit=1")).json()["items"][0]["document"]
    alternate = (await hot.state.client.get(PAGE)).headers["link"].split(";")[0].strip("<>")

    async def behind(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def in_front(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = hot  # as FastAPI sets it: the hot path finds the worker's resources
        await HotPaths(behind)(scope, receive, send)

    transport = httpx.ASGITransport(app=in_front)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for url in (listed, alternate, DOCUMENT, PAGE, PAGE + "?utm_source=x"):
            assert (await client.get(url)).status_code == 200, url
        for url in (DOCUMENT + "?site=testsite&x=1", DOCUMENT + "?site=BAD", "/roof-repair/"):
            assert (await client.get(url)).status_code == 599, url
