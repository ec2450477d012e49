"""IndexNow: the changed URLs of a site go to a local endpoint in batches, with retries,
a ledger, no resubmission of unchanged pages, and nothing lost or resent after a crash."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.seeding import DATA, SERVICE_HEADER, SERVICES, cli, fetch, write

KEY = "0f3c7b2a9d8e4f61"


class Endpoint:
    """A local IndexNow endpoint: records every request, answers from a script (status,
    headers, seconds to wait first), then 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, str], float]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, headers, wait = endpoint.script.pop(0) if endpoint.script else (200, {}, 0)
                time.sleep(wait)
                endpoint.requests.append(json.loads(body))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/indexnow"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def urls(self) -> list[str]:
        return [url for request in self.requests for url in request["urlList"]]


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    served = Endpoint()
    yield served
    served.server.shutdown()
    served.server.server_close()


def with_key(dsn: str, tmp_path: Path, endpoint: Endpoint) -> None:
    site = (DATA / "site.toml").read_text()
    site += f'\n[indexnow]\nkey = "{KEY}"\nendpoint = "{endpoint.url}"\n'
    (tmp_path / "site.toml").write_text(site)
    result = cli(dsn, "sites", "add", str(tmp_path / "site.toml"))
    assert result.exit_code == 0, result.output


def live_urls(dsn: str) -> list[str]:
    rows = fetch(dsn, "SELECT path FROM pages WHERE deleted_at IS NULL AND indexable ORDER BY path")
    return ["https://test.example" + row["path"] for row in rows]


def push(dsn: str, *args: str) -> Any:
    return cli(dsn, "indexnow", "push", *args)


def test_changed_urls_go_in_batches_and_unchanged_ones_never_again(
    site_dsn: str, tmp_path: Path, endpoint: Endpoint
) -> None:
    with_key(site_dsn, tmp_path, endpoint)
    generated = cli(site_dsn, "generate")  # the key is not content: no page changes
    assert "0 inserted, 0 updated" in generated.stdout, generated.output
    expected = live_urls(site_dsn)
    assert len(expected) >= 4
    result = push(site_dsn, "--batch", "3")
    assert result.exit_code == 0, result.output
    batches = -(-len(expected) // 3)
    assert result.stdout == (
        f"testsite: {len(expected):,} URLs accepted (0 gone or out of the index) in "
        f"{batches} batch(es); {batches} requests, 0 retried\n"
    )
    assert endpoint.urls() == expected
    assert [len(request["urlList"]) for request in endpoint.requests][:1] == [3]
    assert endpoint.requests[0] | {"urlList": []} == {
        "host": "test.example",
        "key": KEY,
        "keyLocation": f"https://test.example/{KEY}.txt",
        "urlList": [],
    }
    # Nothing changed: nothing is sent, even after a generate that rewrites nothing.
    cli(site_dsn, "generate")
    again = push(site_dsn)
    assert (
        again.stdout.startswith("testsite: 0 URLs accepted") and len(endpoint.requests) == batches
    )
    # Roof repair goes: its pages are tombstoned, and only they are sent, as gone.
    services = write(tmp_path / "s.csv", SERVICE_HEADER, SERVICES[1:])
    assert cli(site_dsn, "seed", "services", str(services), "--prune").exit_code == 0
    gone = [url for url in expected if "/roof-repair/" in url]
    result = push(site_dsn)
    assert f"{len(gone)} URLs accepted ({len(gone)} gone" in result.stdout, result.output
    assert endpoint.requests[-1]["urlList"] == gone
    status = cli(site_dsn, "indexnow", "status", "--json")
    counts = json.loads(status.stdout)
    assert counts | {"last_submitted": None} == {
        "site": "testsite",
        "key": KEY,
        "endpoint": endpoint.url,
        "pending": 0,
        "submitted": len(expected),
        "gone": len(gone),
        "failing": 0,
        "last_submitted": None,
    }
    asyncio.run(_key_file(site_dsn))


async def _key_file(dsn: str) -> None:
    from seo_engine.serve.app import create_app
    from tests.conftest import _client, make_settings

    async for client in _client(create_app(make_settings(dsn))):
        response = await client.get(f"/{KEY}.txt", headers={"host": "test.example"})
        assert (response.status_code, response.text) == (200, KEY)
        assert response.headers["content-type"].startswith("text/plain")
        other = await client.get("/0000000000000000.txt", headers={"host": "test.example"})
        assert other.status_code == 404


def test_429_is_retried_after_its_delay_and_a_refusal_is_recorded(
    site_dsn: str, tmp_path: Path, endpoint: Endpoint
) -> None:
    with_key(site_dsn, tmp_path, endpoint)
    expected = live_urls(site_dsn)
    endpoint.script = [(429, {"Retry-After": "0"}, 0), (403, {}, 0)]
    result = push(site_dsn, "--batch", "2")
    assert result.exit_code == 65
    assert "answered 403 Forbidden to a batch of 2 URLs: ''; 0 URLs were" in result.stderr
    assert len(endpoint.requests) == 2 and endpoint.requests[0] == endpoint.requests[1]
    ledger = fetch(site_dsn, "SELECT status, attempts, submitted_at FROM indexnow_ledger")
    assert [tuple(row) for row in ledger] == [(403, 2, None), (403, 2, None)]
    status = cli(site_dsn, "indexnow", "status")
    assert f"0 URLs accepted (0 as gone), 2 failing, {len(expected)} pending" in status.stdout
    # The endpoint takes them now: everything pending goes, the refused batch included.
    result = push(site_dsn)
    assert result.exit_code == 0, result.output
    assert endpoint.requests[-1]["urlList"] == expected


def test_a_push_killed_mid_way_loses_nothing_and_resends_nothing_accepted(
    site_dsn: str, tmp_path: Path, endpoint: Endpoint
) -> None:
    with_key(site_dsn, tmp_path, endpoint)
    expected = live_urls(site_dsn)
    endpoint.script = [(200, {}, 0), (200, {}, 30)]  # the second batch hangs
    command = [sys.executable, "-m", "seo_engine", "indexnow", "push", "--batch", "2"]
    process = subprocess.Popen(
        command, env={**os.environ, "DATABASE_URL": site_dsn}, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while len(fetch(site_dsn, "SELECT 1 FROM indexnow_ledger")) < 2:
            assert time.monotonic() < deadline, "the first batch was never recorded"
            time.sleep(0.1)
        time.sleep(0.5)  # the second request is waiting on the endpoint
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    first = endpoint.requests[0]["urlList"]
    assert first == expected[:2]
    endpoint.script = []
    result = push(site_dsn, "--batch", "2")
    assert result.exit_code == 0, result.output
    resent = [url for request in endpoint.requests[1:] for url in request["urlList"]]
    # The hung request may have reached the endpoint before the kill: its URLs were never
    # recorded, so they go again; the recorded first batch never does.
    assert sorted(set(resent)) == expected[2:]
    assert not set(first) & set(resent)


def test_the_server_pushes_in_the_background_when_configured(
    site_dsn: str, tmp_path: Path, endpoint: Endpoint
) -> None:
    with_key(site_dsn, tmp_path, endpoint)
    expected = live_urls(site_dsn)
    asyncio.run(_pushed_by_the_server(site_dsn, endpoint, expected))
    # A command finds nothing left to send, and the ledger holds every URL once.
    again = push(site_dsn)
    assert again.stdout.startswith("testsite: 0 URLs accepted"), again.output


async def _pushed_by_the_server(dsn: str, endpoint: Endpoint, expected: list[str]) -> None:
    from seo_engine.serve.app import create_app
    from tests.conftest import _client, make_settings

    async for _ in _client(create_app(make_settings(dsn, indexnow_interval=0.2))):
        deadline = time.monotonic() + 20
        while sorted(endpoint.urls()) != expected:
            assert time.monotonic() < deadline, endpoint.urls()
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # later rounds find nothing pending
    assert sorted(endpoint.urls()) == expected
