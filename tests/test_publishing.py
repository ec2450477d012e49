"""Publishing: drafts and scheduled pages are invisible everywhere (HTML, API, export,
sitemaps, hubs, other pages' links) until their time, then visible with no command run;
unpublishing leaves a tombstone; the drip publishes best first; links rewritten by a
publishing step are exactly what a generate builds."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from seo_engine.serve.app import create_app
from tests.conftest import _client, make_settings
from tests.seeding import (
    DATA,
    LOCATION_HEADER,
    LOCATIONS,
    SERVICE_HEADER,
    SERVICES,
    cli,
    fetch,
    write,
)

HOST = {"host": "test.example"}
AUSTIN = "/roof-repair/austin-tx"
ROUND_ROCK = "/roof-repair/round-rock-tx"


def make_site(dsn: str, tmp_path: Path, publishing: str) -> None:
    """The test site with this [publishing] table, seeded and generated."""
    site = (DATA / "site.toml").read_text() + f"\n[publishing]\n{publishing}\n"
    (tmp_path / "site.toml").write_text(site)
    added = cli(dsn, "sites", "add", str(tmp_path / "site.toml"))
    assert added.exit_code == 0, added.output
    locations = write(tmp_path / "locations.csv", LOCATION_HEADER, LOCATIONS)
    services = write(tmp_path / "services.csv", SERVICE_HEADER, SERVICES)
    assert cli(dsn, "seed", "locations", str(locations)).exit_code == 0
    assert cli(dsn, "seed", "services", str(services)).exit_code == 0
    generated = cli(dsn, "generate", "--workers", "1")
    assert generated.exit_code == 0, generated.output


def states(dsn: str) -> dict[str, str]:
    return {row["path"]: row["state"] for row in fetch(dsn, "SELECT path, state FROM pages")}


async def seen(client: httpx.AsyncClient) -> dict[str, Any]:
    """Everything a visitor, a crawler and a builder can see of the site."""
    pages = (await client.get("/api/v1/pages?limit=100", headers=HOST)).json()["items"]
    lines = (await client.get("/api/v1/export.ndjson", headers=HOST)).text.splitlines()
    export = [json.loads(line) for line in lines[:-1]]  # the last line: the sync token
    shard = await client.get("/sitemap-pages-1.xml", headers=HOST)
    hub = (await client.get("/roof-repair/", headers=HOST)).text
    place = (await client.get("/in/austin-tx/", headers=HOST)).text
    return {
        "api": sorted(item["path"] for item in pages),
        "export": sorted(line["path"] for line in export),
        "sitemap": shard.text if shard.status_code == 200 else "",
        "hubs": hub + place,
    }


def linked(document: dict[str, Any]) -> list[str]:
    links = document["links"]
    return sorted(link["path"] for link in links["nearby"] + links["services"])


def test_drafts_and_scheduled_pages_stay_hidden_until_their_time(
    fresh_dsn: str, tmp_path: Path
) -> None:
    make_site(fresh_dsn, tmp_path, 'new_pages = "draft"')
    assert set(states(fresh_dsn).values()) == {"draft"}
    published = cli(
        fresh_dsn, "publish", "live", "--service", "roof-repair", "--location", "austin-tx"
    )
    assert published.exit_code == 0, published.output
    assert "1 page(s) now live" in published.stdout
    at = datetime.now(UTC) + timedelta(seconds=3)
    scheduled = cli(
        fresh_dsn, "publish", "schedule", "--at", at.isoformat(), "--location", "round-rock-tx"
    )
    assert scheduled.exit_code == 0, scheduled.output
    asyncio.run(_hidden_then_live(fresh_dsn, at))


async def _hidden_then_live(dsn: str, at: datetime) -> None:
    app = create_app(make_settings(dsn, publish_interval=0.2))  # caches told by NOTIFY
    async for client in _client(app):
        before = await seen(client)
        assert before["api"] == before["export"] == [AUSTIN]
        assert AUSTIN in before["sitemap"] and ROUND_ROCK not in before["sitemap"]
        assert AUSTIN in before["hubs"] and ROUND_ROCK not in before["hubs"]
        assert (await client.get(ROUND_ROCK, headers=HOST)).status_code == 404
        api = "/api/v1/pages/roof-repair/round-rock-tx"
        assert (await client.get(api, headers=HOST)).status_code == 404
        austin = (await client.get("/api/v1/pages/roof-repair/austin-tx", headers=HOST)).json()
        assert linked(austin) == []  # every other page is a draft or scheduled
        html = (await client.get(AUSTIN, headers=HOST)).text
        assert "round-rock-tx" not in html
        waiting = await client.get("/api/v1/pages?state=scheduled", headers=HOST)
        assert sorted(item["path"] for item in waiting.json()["items"]) == sorted(
            ["/gutter-cleaning/round-rock-tx", ROUND_ROCK]
        )
        # Its time comes: the server's clock publishes it, no command runs.
        deadline = asyncio.get_running_loop().time() + 20
        while (await client.get(ROUND_ROCK, headers=HOST)).status_code != 200:
            assert asyncio.get_running_loop().time() < deadline, "never went live"
            await asyncio.sleep(0.2)
        after = await seen(client)
        assert ROUND_ROCK in after["api"] and ROUND_ROCK in after["export"]
        assert ROUND_ROCK in after["sitemap"] and ROUND_ROCK in after["hubs"]
        austin_now = (await client.get("/api/v1/pages/roof-repair/austin-tx", headers=HOST)).json()
        assert linked(austin_now) == [ROUND_ROCK]
        assert austin_now["updated_at"] > austin["updated_at"]  # its links changed
        round_rock = (await client.get(api, headers=HOST)).json()
        assert datetime.fromisoformat(round_rock["updated_at"]) >= at
        assert linked(round_rock) == ["/gutter-cleaning/round-rock-tx", AUSTIN]
        # Incremental consumers see both changes.
        since = austin["updated_at"]
        changes = await client.get("/api/v1/pages", params={"updated_since": since}, headers=HOST)
        items = changes.json()["items"]
        changed = {item["path"] for item in items if not item["deleted"]}
        assert {AUSTIN, ROUND_ROCK} <= changed
        # Pages that never were live are in no feed, however often they were rewritten.
        assert [item["path"] for item in items if item["deleted"]] == []


def test_unpublishing_leaves_a_tombstone_and_removes_the_links_to_it(
    fresh_dsn: str, tmp_path: Path
) -> None:
    make_site(fresh_dsn, tmp_path, 'new_pages = "live"')
    before = fetch(fresh_dsn, "SELECT max(updated_at) AS at FROM pages")[0]["at"]
    assert ROUND_ROCK in _document_links(fresh_dsn, AUSTIN)
    result = cli(fresh_dsn, "publish", "draft", "--location", "round-rock-tx")
    assert result.exit_code == 0, result.output
    assert "2 page(s) now draft" in result.stdout and "2 went away" in result.stdout
    assert ROUND_ROCK not in _document_links(fresh_dsn, AUSTIN)
    asyncio.run(_tombstoned(fresh_dsn, before))
    # Published again, it is linked again; and a publishing step's documents are exactly
    # what a generate builds: a forced generate finds nothing to change.
    assert cli(fresh_dsn, "publish", "live", "--all").exit_code == 0
    assert ROUND_ROCK in _document_links(fresh_dsn, AUSTIN)
    assert cli(fresh_dsn, "publish", "draft", "--location", "waco-tx").exit_code == 0
    forced = cli(fresh_dsn, "generate", "--force", "--workers", "1")
    assert forced.exit_code == 0, forced.output
    assert "0 inserted, 0 updated" in forced.stdout, forced.stdout


def _document_links(dsn: str, path: str) -> list[str]:
    row = fetch(dsn, "SELECT document FROM pages WHERE path = $1", path)[0]
    return linked(json.loads(row["document"]))


async def _tombstoned(dsn: str, since: datetime) -> None:
    async for client in _client(create_app(make_settings(dsn, publish_interval=0))):
        assert (await client.get(ROUND_ROCK, headers=HOST)).status_code == 404
        params = {"updated_since": since.isoformat()}
        items = (await client.get("/api/v1/pages", params=params, headers=HOST)).json()["items"]
        gone = sorted(item["path"] for item in items if item["deleted"])
        assert gone == ["/gutter-cleaning/round-rock-tx", ROUND_ROCK]
        export = await client.get("/api/v1/export.ndjson", params=params, headers=HOST)
        lines = [json.loads(line) for line in export.text.splitlines()[:-1]]
        assert {line["path"] for line in lines if line.get("deleted")} == set(gone)


def test_the_drip_publishes_its_daily_share_best_first(fresh_dsn: str, tmp_path: Path) -> None:
    make_site(fresh_dsn, tmp_path, 'new_pages = "queued"\nper_day = 3\nat = "09:00"')
    assert set(states(fresh_dsn).values()) == {"queued"}
    preview = cli(fresh_dsn, "publish", "preview", "--days", "5", "--json")
    assert preview.exit_code == 0, preview.output
    days = json.loads(preview.stdout)
    assert [day["drip"] for day in days] == [3, 3, 2]
    # Two release times pass (as if the server had been off): six pages go live, the best.
    fetch(fresh_dsn, "UPDATE sites SET drip_from = now() - interval '2 days'")
    released = cli(fresh_dsn, "publish", "release")
    assert released.exit_code == 0, released.output
    assert "6 page(s) went live (0 scheduled, 6 from the drip backlog in 2" in released.stdout
    ranked = fetch(
        fresh_dsn,
        "SELECT path, state FROM pages ORDER BY indexable DESC, quality_score DESC, id",
    )
    assert [row["state"] for row in ranked] == ["live"] * 6 + ["queued"] * 2
    again = cli(fresh_dsn, "publish", "release")
    assert "0 page(s) went live" in again.stdout, again.output
    status = cli(fresh_dsn, "publish", "status", "--json")
    found = json.loads(status.stdout)
    assert found["states"]["live"]["pages"] == 6 and found["states"]["queued"]["pages"] == 2
    assert found["next_release"] is not None and found["recent"][0]["action"] == "drip"
    # The backlog empties: the drip's clock stops.
    assert cli(fresh_dsn, "publish", "live", "--state", "queued", "--all").exit_code == 0
    assert fetch(fresh_dsn, "SELECT drip_from FROM sites")[0]["drip_from"] is None


def test_bad_publishing_input_is_refused_with_the_reason(fresh_dsn: str, tmp_path: Path) -> None:
    site = (DATA / "site.toml").read_text()
    for table, reason in [
        ('new_pages = "later"', "new_pages must be one of live, queued, draft"),
        ('new_pages = "queued"', "needs per_day"),
        ('at = "25:00"', "at must be a time of day as HH:MM (UTC)"),
        ("per_day = -1", "per_day must be a whole number from 0"),
        ("rate = 5", "unknown option 'rate'"),
    ]:
        (tmp_path / "site.toml").write_text(site + f"\n[publishing]\n{table}\n")
        result = cli(fresh_dsn, "sites", "add", str(tmp_path / "site.toml"))
        assert result.exit_code == 65 and reason in result.stderr, (table, result.output)
    make_site(fresh_dsn, tmp_path, 'new_pages = "live"')
    everything = cli(fresh_dsn, "publish", "draft")
    assert everything.exit_code == 2 and "or pass --all" in everything.stderr
    queue = cli(fresh_dsn, "publish", "queue", "--all", "--state", "live")
    assert queue.exit_code == 65 and "has no drip" in queue.stderr
    past = cli(fresh_dsn, "publish", "schedule", "--at", "2020-01-01T00:00", "--all")
    assert past.exit_code == 65 and "in the future" in past.stderr
    dry = cli(fresh_dsn, "publish", "draft", "--region", "TX", "--dry-run")
    assert "8 page(s) selected; nothing changed" in dry.stdout, dry.output
    assert set(states(fresh_dsn).values()) == {"live"}
