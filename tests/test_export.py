"""The NDJSON export over real sockets: disconnects and the concurrency limit."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from seo_engine.serve.app import create_app
from tests.conftest import _client, make_settings
from tests.live import live_server
from tests.seeding import SEEDS_DIR, cli, fetch, setup_site, subset_of_bundled_locations


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
        disconnected = time.monotonic()
        while busy_app_connections(fresh_dsn):
            assert time.monotonic() - disconnected < 1.0, "export kept its connection busy"
            time.sleep(0.02)
        # The only export slot is free again: a new export runs to the end.
        deadline = time.monotonic() + 5
        while True:
            response = httpx.get(f"{url}/api/v1/export.ndjson", timeout=60)
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert response.status_code == 200
        assert response.text.count("\n") == pages


async def test_a_burst_beyond_the_export_limit_gets_503s_at_once(
    fresh_dsn: str, tmp_path: Path
) -> None:
    """The slot is taken before the 200 is sent: the requests over the limit are told to
    come back (503 + Retry-After) instead of being sent a 200 that waits for a slot."""
    await asyncio.to_thread(setup_site, fresh_dsn, tmp_path)
    app = create_app(make_settings(fresh_dsn, export_concurrency=1))
    async for client in _client(app):
        burst = await asyncio.gather(*(client.get("/api/v1/export.ndjson") for _ in range(3)))
        assert sorted(response.status_code for response in burst) == [200, 503, 503]
        refused = next(response for response in burst if response.status_code == 503)
        assert refused.headers["retry-after"] == "1"
        # Slots are given back when a stream ends, so the next export is served.
        assert (await client.get("/api/v1/export.ndjson")).status_code == 200
