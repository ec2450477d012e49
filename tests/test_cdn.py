"""CDNs: surrogate keys on pages and documents, and after a generate or publishing step
the keys and URLs of exactly the pages it changed, printed or sent to a webhook."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from click.testing import Result

from seo_engine.serve import html
from seo_engine.serve.app import create_app
from tests.conftest import _client, make_settings
from tests.seeding import LOCATION_HEADER, LOCATIONS, fetch, runner, write
from tests.test_publishing import make_site

HOST = {"host": "test.example"}
KEYS = (
    "site:testsite service:testsite:roof-repair location:testsite:austin-tx "
    "page:testsite:/roof-repair/austin-tx"
)
# The pages the last writing transaction changed (each write records its transaction).
LAST_CHANGED = """
SELECT path FROM pages
WHERE change_xid = (SELECT max(change_xid) FROM pages)
"""


def cli_with(dsn: str, purge: str, *args: str, max_keys: int = 1000) -> Result:
    from seo_engine.cli import app

    environment = {
        "DATABASE_URL": dsn,
        "SEO_ENGINE_PURGE": purge,
        "SEO_ENGINE_PURGE_MAX_KEYS": str(max_keys),
    }
    return runner.invoke(app, list(args), env=environment)


def last_changed(dsn: str) -> set[str]:
    return {row["path"] for row in fetch(dsn, LAST_CHANGED)}


async def test_pages_and_documents_carry_their_keys(site_client: httpx.AsyncClient) -> None:
    page = await site_client.get("/roof-repair/austin-tx", headers=HOST)
    version = html.current_template_version()
    assert page.headers["surrogate-key"] == f"{KEYS} version:testsite:{version}"
    assert page.headers["cache-tag"] == page.headers["surrogate-key"].replace(" ", ",")
    head = await site_client.head("/roof-repair/austin-tx", headers=HOST)
    assert head.headers["surrogate-key"] == page.headers["surrogate-key"]
    document = await site_client.get("/api/v1/pages/roof-repair/austin-tx")
    assert document.headers["surrogate-key"] == f"{KEYS} version:testsite:documents-1"


def test_a_generate_prints_the_keys_and_urls_of_what_it_changed(
    site_dsn: str, tmp_path: Path
) -> None:
    rows = [row.replace("138486", "140000") for row in LOCATIONS]  # Waco's population
    locations = write(tmp_path / "locations.csv", LOCATION_HEADER, rows)
    assert cli_with(site_dsn, "print", "seed", "locations", str(locations)).exit_code == 0
    result = cli_with(site_dsn, "print", "generate", "--workers", "1")
    assert result.exit_code == 0, result.output
    changed = last_changed(site_dsn)
    assert changed and len(changed) < 8  # not every page: only those showing Waco's figures
    keys_line, urls_line = result.output.strip().splitlines()[-2:]
    assert keys_line.startswith(f"purge keys ({len(changed)} page(s)): ")
    assert set(keys_line.split(": ", 1)[1].split()) == {f"page:testsite:{p}" for p in changed}
    assert set(urls_line.split(": ", 1)[1].split()) == {f"https://test.example{p}" for p in changed}
    again = cli_with(site_dsn, "print", "generate", "--workers", "1")
    assert "purge" not in again.output  # nothing changed, nothing to purge


class Webhook:
    """A local purge endpoint: records what it is sent; answers `statuses` in turn."""

    def __init__(self, statuses: list[int]) -> None:
        self.bodies: list[dict[str, object]] = []
        self.statuses = statuses

    @contextmanager
    def serving(self) -> Iterator[str]:
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                webhook.bodies.append(json.loads(self.rfile.read(length)))
                status = (
                    webhook.statuses.pop(0) if len(webhook.statuses) > 1 else webhook.statuses[0]
                )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/purge"
        finally:
            server.shutdown()
            thread.join(timeout=5)
            server.server_close()


def test_a_publishing_step_sends_its_purge_to_the_webhook(site_dsn: str) -> None:
    webhook = Webhook([503, 200])  # a retry gets it through
    with webhook.serving() as url:
        result = cli_with(site_dsn, url, "publish", "draft", "--service", "gutter-cleaning")
    assert result.exit_code == 0, result.output
    changed = last_changed(site_dsn)  # the four pages unpublished and the pages linking to them
    assert {f"/gutter-cleaning/{city}" for city in ("austin-tx", "waco-tx")} <= changed
    assert len(webhook.bodies) == 2 and webhook.bodies[0] == webhook.bodies[1]
    body = webhook.bodies[-1]
    assert body["site"] == "testsite" and body["everything"] is False
    assert set(body["keys"]) == {f"page:testsite:{path}" for path in changed}  # type: ignore[arg-type]
    assert set(body["urls"]) == {f"https://test.example{path}" for path in changed}  # type: ignore[arg-type]
    assert (
        f"purge: {len(changed)} key(s) for {len(changed)} page(s) sent to the webhook"
        in result.output
    )


def test_a_refused_purge_is_a_warning_with_the_keys_and_a_big_one_purges_the_site(
    site_dsn: str,
) -> None:
    refusing = Webhook([500])
    with refusing.serving() as url:
        result = cli_with(site_dsn, url, "publish", "draft", "--service", "roof-repair")
    assert result.exit_code == 0, result.output  # the step is committed all the same
    assert len(refusing.bodies) == 3  # tried three times
    warning = "warning: the purge webhook did not take the purge (HTTP 500); purge by hand: "
    assert warning + "page:testsite:/roof-repair/" in result.output
    accepting = Webhook([200])
    with accepting.serving() as url:
        result = cli_with(site_dsn, url, "publish", "live", "--all", max_keys=2)
    assert result.exit_code == 0, result.output
    assert accepting.bodies[-1]["keys"] == ["site:testsite"]
    assert accepting.bodies[-1]["everything"] is True
    assert "for every page (over SEO_ENGINE_PURGE_MAX_KEYS) sent to the webhook" in result.output


def test_the_servers_own_releases_send_their_purge(fresh_dsn: str, tmp_path: Path) -> None:
    """Scheduled pages go live by the server's clock, with no command run: the server
    sends the purge of what went live (and of the pages whose links changed with them)."""
    make_site(fresh_dsn, tmp_path, 'new_pages = "draft"')
    at = datetime.now(UTC) + timedelta(seconds=2)
    scheduled = cli_with(
        fresh_dsn, "print", "publish", "schedule", "--at", at.isoformat(), "--location", "waco-tx"
    )
    assert scheduled.exit_code == 0, scheduled.output
    webhook = Webhook([200])
    with webhook.serving() as url:
        asyncio.run(_released_by_the_server(fresh_dsn, url, webhook))
    # The release rewrote the drafts too (their links): not served, nothing to purge.
    live = "SELECT path FROM pages WHERE state = 'live' AND deleted_at IS NULL"
    released = last_changed(fresh_dsn) & {row["path"] for row in fetch(fresh_dsn, live)}
    assert released == {"/roof-repair/waco-tx", "/gutter-cleaning/waco-tx"}
    [body] = webhook.bodies
    assert set(body["keys"]) == {f"page:testsite:{path}" for path in released}  # type: ignore[arg-type]


async def _released_by_the_server(dsn: str, url: str, webhook: Webhook) -> None:
    settings = make_settings(dsn, publish_interval=0.2, purge=url)
    async for _ in _client(create_app(settings)):
        deadline = time.monotonic() + 20
        while not webhook.bodies:
            assert time.monotonic() < deadline, "no purge from the server"
            await asyncio.sleep(0.2)
