"""The NDJSON export over real sockets: disconnects and the concurrency limit."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from seo_engine.serve.app import create_app
from tests.conftest import _client, make_settings
from tests.live import live_server
from tests.seeding import SEEDS_DIR, cli, fetch, setup_site, subset_of_bundled_locations
from tests.waiting import until, until_async


def build_bundled_site(dsn: str, tmp_path: Path, locations: int) -> int:
    """The bundled site with `locations` US cities x 120 services; returns the page count."""
    assert cli(dsn, "sites", "add", str(SEEDS_DIR / "site.toml")).exit_code == 0
    cli(dsn, "seed", "locations", str(subset_of_bundled_locations(tmp_path, locations)))
    cli(dsn, "seed", "services", str(SEEDS_DIR / "services.csv"))
    assert cli(dsn, "generate").exit_code == 0
    return int(fetch(dsn, "SELECT count(*) AS n FROM pages")[0]["n"])


def busy_app_connections(dsn: str) -> int:
    rows = fetch(
        dsn,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'seo-engine' AND state <> 'idle'",
    )
    return int(rows[0]["n"])


def test_a_client_that_disconnects_mid_export_frees_its_connection(
    fresh_dsn: str, tmp_path: Path
) -> None:
    pages = build_bundled_site(fresh_dsn, tmp_path, 60)
    assert pages == 60 * 120
    settings = make_settings(fresh_dsn, export_concurrency=1)
    with live_server(settings) as url:
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port)) as raw:
            raw.sendall(b"GET /api/v1/export.ndjson HTTP/1.1\r\nHost: test\r\n\r\n")
            received = raw.recv(65536)
            assert received.startswith(b"HTTP/1.1 200")
        until(lambda: not busy_app_connections(fresh_dsn), 1.0, "the export to free its connection")
        # The only export slot is free again: a new export runs to the end.
        responses: list[httpx.Response] = []

        def exported() -> bool:
            responses.append(httpx.get(f"{url}/api/v1/export.ndjson", timeout=60))
            return responses[-1].status_code == 200

        until(exported, 5, "a new export to be served")
        assert responses[-1].text.count("\n") == pages + 1  # and the sync token


async def test_a_burst_beyond_the_export_limit_gets_503s_at_once(
    fresh_dsn: str, tmp_path: Path
) -> None:
    """The slot is taken before the 200 is sent: of a burst of exports over a limit of one,
    the others are told to come back (503 + Retry-After) instead of being sent a 200 that
    waits for the slot. Each client here reads nothing past the first chunk until told."""
    await asyncio.to_thread(setup_site, fresh_dsn, tmp_path)
    app = create_app(make_settings(fresh_dsn, export_concurrency=1))
    release = asyncio.Event()
    starts: list[dict[str, object]] = []

    async def slow_client() -> None:
        requested = False

        async def receive() -> dict[str, object]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await release.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                starts.append(message)
            elif message.get("body"):
                await release.wait()  # a client that stops reading

        await app(export_scope(), receive, send)

    async for client in _client(app):
        # Sites known: nothing makes one request wait before it decides on the slot.
        assert (await client.get("/api/v1/sites")).status_code == 200
        burst = [asyncio.create_task(slow_client()) for _ in range(3)]

        async def all_started() -> bool:
            return len(starts) == 3

        await until_async(all_started, 10, "three responses to start")
        assert sorted(int(str(start["status"])) for start in starts) == [200, 503, 503]
        refused = next(start for start in starts if start["status"] == 503)
        assert (b"retry-after", b"1") in list(refused["headers"])  # type: ignore[call-overload]
        release.set()
        await asyncio.gather(*burst)
        # The slot came back when the stream ended: the next export is served.
        assert (await client.get("/api/v1/export.ndjson")).status_code == 200


def export_scope() -> dict[str, object]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/export.ndjson",
        "raw_path": b"/api/v1/export.ndjson",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
