"""Operating the server: /metrics added up over its worker processes and kept from the
public, request ids in responses and in every log line of a request, JSON logs."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Histogram

from seo_engine import logs
from seo_engine.serve import metrics
from seo_engine.serve.app import create_app
from seo_engine.settings import SettingsError, load_settings
from tests.conftest import _client, make_settings
from tests.live import served
from tests.seeding import SERVICE_HEADER, cli, setup_site, write
from tests.waiting import until

HOST = {"host": "test.example"}
PAGE = "/roof-repair/austin-tx"
DOCUMENT = "/api/v1/pages/roof-repair/austin-tx"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_add_up_over_the_workers(site_dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    environment = {"DATABASE_URL": site_dsn, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    with served(environment, workers=2) as url:

        async def burst() -> None:
            # Many connections at once, so that both workers answer some.
            limits = httpx.Limits(max_connections=40)
            async with httpx.AsyncClient(base_url=url, limits=limits) as client:
                pages = [client.get(PAGE, headers=HOST) for _ in range(60)]
                bots = [
                    client.get(DOCUMENT, headers={"user-agent": "Googlebot/2.1"}) for _ in range(60)
                ]
                answers = await asyncio.gather(*pages, *bots)
                assert {answer.status_code for answer in answers} == {200}

        asyncio.run(burst())
        writers = {file.name.split("_")[-1] for file in folder.glob("counter_*.db")}
        assert len(writers) >= 2, "one worker answered everything: nothing was added up"

        def published() -> bool:  # each worker adds its counts every second
            text = httpx.get(f"{url}/metrics").text
            durations = "seo_engine_http_request_duration_seconds_count"
            return (
                sample(text, durations, route="page") + sample(text, durations, route="document")
                >= 120
            )

        until(published, 10, "every worker's requests in /metrics")
        for _ in range(4):  # whichever worker answers the scrape, the totals are the same
            text = httpx.get(f"{url}/metrics").text
            page = sample(
                text, "seo_engine_http_requests_total", route="page", status="200", agent="other"
            )
            document = sample(
                text,
                "seo_engine_http_requests_total",
                route="document",
                status="200",
                agent="crawler",
            )
            assert (page, document) == (60, 60)
            assert (
                sample(text, "seo_engine_http_request_duration_seconds_count", route="page") == 60
            )
            assert sample(text, "seo_engine_db_pool_connections") >= 1


async def test_metrics_are_only_for_the_allowed_networks(site_client_dsn: str) -> None:
    allowed = create_app(make_settings(site_client_dsn))  # loopback, as the test client is
    async for client in _client(allowed):
        await client.get(PAGE, headers=HOST)
        answer = await client.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert "seo_engine_page_cache_lookups_total" in answer.text
    # No page cache, so no change listener: an app stopped while its listener is still
    # connecting leaves asyncpg a future nobody reads (over TCP with SSL negotiation).
    quiet = {"page_cache_seconds": 0}
    elsewhere = create_app(make_settings(site_client_dsn, metrics_allow="10.0.0.0/8", **quiet))
    async for client in _client(elsewhere):
        refused = await client.get("/metrics")
        assert refused.status_code == 404 and "seo_engine" not in refused.text
    off = create_app(make_settings(site_client_dsn, metrics=False, **quiet))
    async for client in _client(off):
        assert (await client.get("/metrics")).status_code == 404


def test_a_bad_allow_list_is_named() -> None:
    with pytest.raises(SettingsError, match="SEO_ENGINE_METRICS_ALLOW"):
        load_settings(metrics_allow="127.0.0.1/32,not-a-network")


async def test_request_ids_reach_the_response_and_every_log_line(
    site_client_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(site_client_dsn, access_log=True))
    caplog.set_level(logging.INFO, logger="seo_engine.access")
    async for client in _client(app):
        given = await client.get(PAGE, headers={**HOST, "x-request-id": "build-42.a"})
        assert given.headers["x-request-id"] == "build-42.a"
        made = await client.get(DOCUMENT, headers={"x-request-id": "not ok\tat all"})
        assert made.headers["x-request-id"] not in ("", "not ok\tat all")
        missing = await client.get("/api/v1/pages/no-such/page")
        assert missing.status_code == 404 and missing.headers["x-request-id"]
    lines = [record for record in caplog.records if record.name == "seo_engine.access"]
    by_id = {getattr(record, "request_id", None): record for record in lines}
    assert by_id["build-42.a"].route == "page"  # type: ignore[attr-defined]
    assert by_id[made.headers["x-request-id"]].status == 200  # type: ignore[attr-defined]
    assert by_id[missing.headers["x-request-id"]].status == 404  # type: ignore[attr-defined]


def test_json_lines_carry_the_request_id_and_the_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "seo_engine.access",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "GET /x 200",
        }
    )
    record.status = 200
    token = logs.REQUEST_ID.set("r-1")
    try:
        logs._Context().filter(record)
    finally:
        logs.REQUEST_ID.reset(token)
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["message"] == "GET /x 200" and line["request_id"] == "r-1"
    assert line["status"] == 200 and line["level"] == "info"
    assert "request_id=r-1" in logs.TextFormatter().format(record)
    # uvicorn's own lines carry their message again with terminal colours: left out.
    record.color_message = "Uvicorn running on \x1b[1m%s\x1b[0m"
    assert "color_message" not in logs.TextFormatter().format(record)
    assert "color_message" not in json.loads(logs.JsonFormatter().format(record))


def test_every_job_is_recorded_with_how_it_ended(fresh_dsn: str, tmp_path: Path) -> None:
    setup_site(fresh_dsn, tmp_path)  # seed locations, seed services, generate
    bad = write(tmp_path / "bad.csv", SERVICE_HEADER, ["s9,Not A Slug!,Name,Cat,Text.,1"])
    assert cli(fresh_dsn, "seed", "services", str(bad)).exit_code != 0
    assert cli(fresh_dsn, "seed", "services", str(bad), "--dry-run").exit_code != 0
    shown = cli(fresh_dsn, "jobs", "--json")
    assert shown.exit_code == 0, shown.output
    runs = json.loads(shown.output)
    assert [run["job"] for run in runs] == [
        "seed services",  # the failed one; the dry run is not a job
        "generate",
        "seed services",
        "seed locations",
    ]
    assert [run["outcome"] for run in runs] == ["failed", "ok", "ok", "ok"]
    assert runs[0]["summary"] and runs[0]["finished_at"]
    assert runs[1]["summary"].startswith("testsite: 8 pages; 8 inserted")
    table = cli(fresh_dsn, "jobs", "--limit", "1")
    assert table.output.count("\n") == 1 and "seed services\t-\tfailed" in table.output


def test_requests_counted_in_bulk_read_as_if_observed_one_by_one() -> None:
    """metrics.add_observations (prometheus-client's private Histogram fields) against the
    public `observe`: the same exposition for the same durations."""
    durations = [0.0001, 0.0005, 0.0007, 0.003, 0.003, 0.02, 0.4, 9.0, 30.0, 0.001]
    registry = CollectorRegistry()
    one_by_one = Histogram("one", "", buckets=metrics.SECONDS_BUCKETS, registry=registry)
    in_bulk = Histogram("bulk", "", buckets=metrics.SECONDS_BUCKETS, registry=registry)
    for seconds in durations:
        one_by_one.observe(seconds)
    stats = metrics.RequestStats()
    for seconds in durations:
        stats.record("page", 200, "other", seconds)
    per_bucket = stats._buckets["page"]
    metrics.add_observations(in_bulk, per_bucket, stats._sums["page"])

    def samples(histogram: Histogram) -> list[tuple[str, dict[str, str], float]]:
        [family] = histogram.collect()
        return [
            (sample.name.split("_", 1)[1], sample.labels, round(sample.value, 9))
            for sample in family.samples
            if not sample.name.endswith("_created")
        ]

    assert samples(in_bulk) == samples(one_by_one)
    assert sum(per_bucket) == len(durations)
