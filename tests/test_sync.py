"""Sync tokens: a consumer that resumes from the token of its last read never misses a
change, whatever runs meanwhile (a generate of every page, a transaction that started
before its read and commits after it), and gets tombstones for what went away."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from seo_engine.serve import cursors, sync
from seo_engine.serve.app import create_app
from tests.conftest import _client, make_settings
from tests.seeding import (
    DATA,
    SERVICE_HEADER,
    SERVICES,
    afetch,
    cli,
    setup_bundled_subset,
    write,
)

HOST = {"host": "test.example"}
# The rows a token's snapshot saw, as they are now: the copy must hold exactly these.
SEEN_ROWS = """
SELECT path, encode(content_hash, 'hex') AS hash,
       deleted_at IS NULL AND state = 'live' AS live
FROM pages
WHERE change_xid IS NULL OR pg_visible_in_snapshot(change_xid, $1::text::pg_snapshot)
"""
LIVE_ROWS = """
SELECT path, encode(content_hash, 'hex') AS hash FROM pages
WHERE deleted_at IS NULL AND state = 'live'
"""


class Consumer:
    """A static-site builder's copy of the pages, kept by the export and its sync token."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.pages: dict[str, str] = {}  # path -> content hash (hex)
        self.token: str | None = None
        self.syncs = 0

    async def sync(self) -> None:
        params = {} if self.token is None else {"sync": self.token}
        response = await self.client.get("/api/v1/export.ndjson", params=params, headers=HOST)
        assert response.status_code == 200, response.text
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert lines[-1] == {"sync_token": response.headers["sync-token"]}
        for line in lines[:-1]:
            if line.get("deleted"):
                self.pages.pop(line["path"], None)
            else:
                self.pages[line["path"]] = line["etag"].strip('"')
        self.token = lines[-1]["sync_token"]
        self.syncs += 1


async def snapshot_of(dsn: str, token: str) -> str:
    key = (await afetch(dsn, cursors.SELECT_KEY))[0]["value"]
    site_id = (await afetch(dsn, "SELECT id FROM sites"))[0]["id"]
    return sync.snapshot_of(key, sync.fingerprint(site_id, None, None, None), token)


async def check(dsn: str, consumer: Consumer) -> None:
    """Every page whose current version the token saw is in the copy as it is now."""
    assert consumer.token is not None
    seen = await afetch(dsn, SEEN_ROWS, await snapshot_of(dsn, consumer.token))
    for row in seen:
        if row["live"]:
            assert consumer.pages.get(row["path"]) == row["hash"], row["path"]
        else:
            assert row["path"] not in consumer.pages, row["path"]


def test_a_consumer_syncing_through_a_generate_of_every_page_misses_nothing(
    fresh_dsn: str, tmp_path: Path
) -> None:
    setup_bundled_subset(fresh_dsn, tmp_path, 400)
    # Every page's intro changes, and one service goes: the next generate rewrites all.
    site = (DATA / "site.toml").read_text().replace("Serving", "Now serving")
    (tmp_path / "site.toml").write_text(site)
    assert cli(fresh_dsn, "sites", "add", str(tmp_path / "site.toml")).exit_code == 0
    asyncio.run(_sync_through_generate(fresh_dsn, tmp_path))


async def _sync_through_generate(dsn: str, tmp_path: Path) -> None:
    async for client in _client(create_app(make_settings(dsn, publish_interval=0))):
        consumer = Consumer(client)
        await consumer.sync()
        await check(dsn, consumer)
        environment = {**os.environ, "DATABASE_URL": dsn}
        generate = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "seo_engine",
            "generate",
            "--workers",
            "1",
            env=environment,
            stdout=asyncio.subprocess.DEVNULL,
        )
        try:
            while generate.returncode is None:
                await consumer.sync()
                await check(dsn, consumer)
                await asyncio.sleep(0.05)
        finally:
            await asyncio.wait_for(generate.wait(), timeout=300)
        assert generate.returncode == 0
        services = write(tmp_path / "one.csv", SERVICE_HEADER, SERVICES[:1])
        pruned = await asyncio.to_thread(cli, dsn, "seed", "services", str(services), "--prune")
        assert pruned.exit_code == 0, pruned.output
        await consumer.sync()
        await check(dsn, consumer)
        live = {row["path"]: row["hash"] for row in await afetch(dsn, LIVE_ROWS)}
        assert consumer.pages == live and consumer.syncs > 3


def test_a_transaction_older_than_a_read_is_not_missed_as_updated_since_would(
    site_dsn: str,
) -> None:
    asyncio.run(_older_transaction(site_dsn))


async def _older_transaction(dsn: str) -> None:
    async for client in _client(create_app(make_settings(dsn, publish_interval=0))):
        writer = await asyncpg.connect(dsn)
        try:
            transaction = writer.transaction()
            await transaction.start()
            # Started before the consumer's read: its updated_at (now()) is older than it.
            await writer.execute(
                "UPDATE pages SET updated_at = now(), content_hash = '\\x00'::bytea "
                "WHERE path = '/roof-repair/waco-tx'"
            )
            started_at = datetime.now(UTC).isoformat()  # what the old advice kept
            first = await client.get("/api/v1/pages", headers=HOST)
            token = first.json()["sync_token"]
            assert first.headers["sync-token"] == token
            await transaction.commit()
        finally:
            await writer.close()
        # Resuming by time from the read's start misses the change (the hole of the old
        # advice); resuming by token gets it.
        by_time = await client.get(
            "/api/v1/pages", params={"updated_since": started_at}, headers=HOST
        )
        assert "/roof-repair/waco-tx" not in [i["path"] for i in by_time.json()["items"]]
        by_token = await client.get("/api/v1/pages", params={"sync": token}, headers=HOST)
        items = by_token.json()["items"]
        assert [item["path"] for item in items] == ["/roof-repair/waco-tx"]
        # Nothing changed since: the next token gives nothing.
        after = await client.get(
            "/api/v1/pages", params={"sync": by_token.json()["sync_token"]}, headers=HOST
        )
        assert after.json()["items"] == []


def test_tokens_are_checked(site_dsn: str) -> None:
    asyncio.run(_checked(site_dsn))


async def _checked(dsn: str) -> None:
    async for client in _client(create_app(make_settings(dsn, publish_interval=0))):
        first = (await client.get("/api/v1/pages?limit=3", headers=HOST)).json()
        token = first["sync_token"]
        # A page of a list hands out the token of the list's first read.
        second = (await client.get(first["next"], headers=HOST)).json()
        assert second["sync_token"] == token
        forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        assert (await client.get(f"/api/v1/pages?sync={forged}", headers=HOST)).status_code == 400
        other = await client.get(
            "/api/v1/pages", params={"sync": token, "service": "roof-repair"}, headers=HOST
        )
        assert other.status_code == 400  # a token of another list
        both = await client.get(
            "/api/v1/pages",
            params={"sync": token, "updated_since": "2020-01-01T00:00:00Z"},
            headers=HOST,
        )
        assert both.status_code == 400
        key = (await afetch(dsn, cursors.SELECT_KEY))[0]["value"]
        site_id = (await afetch(dsn, "SELECT id FROM sites"))[0]["id"]
        query = sync.fingerprint(site_id, None, None, None)
        snapshot = sync.snapshot_of(key, query, token)
        old = cursors.encode(key, query, [snapshot, sync.SCHEMA_VERSION - 1])
        expired = await client.get(f"/api/v1/export.ndjson?sync={old}", headers=HOST)
        assert expired.status_code == 410 and "from scratch" in expired.json()["detail"]


def test_a_filtered_export_syncs_its_own_slice(site_dsn: str) -> None:
    asyncio.run(_filtered(site_dsn))


async def _filtered(dsn: str) -> None:
    """A loader splitting the set into collections syncs each by the export's filters."""
    async for client in _client(create_app(make_settings(dsn, publish_interval=0))):

        async def export(
            client: httpx.AsyncClient = client, **params: str
        ) -> list[dict[str, object]]:
            response = await client.get("/api/v1/export.ndjson", params=params, headers=HOST)
            assert response.status_code == 200, response.text
            return [json.loads(line) for line in response.text.splitlines()]

        roofs = await export(service="roof-repair")
        assert {page["path"] for page in roofs[:-1]} == {
            f"/roof-repair/{city}"
            for city in ("austin-tx", "round-rock-tx", "san-marcos-tx", "waco-tx")
        }
        waco = await export(region="TX", location="waco-tx")
        assert [page["path"] for page in waco[:-1]] == [
            "/roof-repair/waco-tx",
            "/gutter-cleaning/waco-tx",
        ]
        nothing = await export(service="no-such-service")
        assert len(nothing) == 1 and set(nothing[0]) == {"sync_token"}
        # The slice's token resumes the slice (with its changes only), not the whole set.
        token = str(roofs[-1]["sync_token"])
        await afetch(dsn, "UPDATE pages SET title = title || '!' WHERE path LIKE '%/waco-tx'")
        changed = await export(service="roof-repair", sync=token)
        assert [page["path"] for page in changed[:-1]] == ["/roof-repair/waco-tx"]
        foreign = await client.get("/api/v1/export.ndjson", params={"sync": token}, headers=HOST)
        assert foreign.status_code == 400 and "another query" in foreign.json()["detail"]
        # The list with the same filter resumes from the export's token, and the other way.
        listed = await client.get(
            "/api/v1/pages", params={"service": "roof-repair", "sync": token}, headers=HOST
        )
        assert [item["path"] for item in listed.json()["items"]] == ["/roof-repair/waco-tx"]
