"""Prometheus metrics (prometheus-client): what the server does, summed over its workers.

`seo-engine serve` with several workers gives them a shared folder
(PROMETHEUS_MULTIPROC_DIR, set before they start, server.py): each worker writes its
figures there and a scrape of /metrics, whichever worker answers it, adds them up. With one
worker (or in tests) the figures live in the process. Names are prefixed `seo_engine_`,
in base units; requests are labelled by route class (ROUTES), never by path.

What happens per request is counted in plain Python (RequestStats, the page cache's and
validator index's integers) and added to the Prometheus metrics by each worker every
PUBLISH_SECONDS, and by the worker answering a scrape before it answers: writing the shared
figures once per request cost a warm page a quarter of its speed (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import ipaddress
import os
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from seo_engine import paths

if TYPE_CHECKING:
    from seo_engine.db.replicas import ReadPools
    from seo_engine.serve.pagecache import PageCache
    from seo_engine.serve.validator_index import ValidatorIndex

# Decided when this module is first imported, as prometheus-client decides where values go.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
PUBLISH_SECONDS = 1.0
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)

REQUESTS = Counter(
    "seo_engine_http_requests_total",
    "HTTP requests answered, by route class, status and user-agent class",
    ["route", "status", "agent"],
)
DURATION = Histogram(
    "seo_engine_http_request_duration_seconds",
    "Time from a request's arrival to its response's start, by route class",
    ["route"],
    buckets=SECONDS_BUCKETS,
)
POOL_CONNECTIONS = Gauge(
    "seo_engine_db_pool_connections", "Open pooled connections", multiprocess_mode="livesum"
)
POOL_IN_USE = Gauge(
    "seo_engine_db_pool_connections_in_use",
    "Pooled connections lent out",
    multiprocess_mode="livesum",
)
POOL_ACQUIRE = Histogram(
    "seo_engine_db_pool_acquire_seconds",
    "Time to borrow a pooled connection",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 10),
)
POOL_TIMEOUTS = Counter(
    "seo_engine_db_pool_acquire_timeouts_total", "Borrowing a connection timed out (503)"
)
PAGE_CACHE = Counter(
    "seo_engine_page_cache_lookups_total", "Page cache lookups by result", ["result"]
)
PAGE_CACHE_EVICTIONS = Counter(
    "seo_engine_page_cache_evictions_total", "Entries dropped for the memory budget"
)
PAGE_CACHE_BYTES = Gauge(
    "seo_engine_page_cache_bytes", "Memory the page caches hold", multiprocess_mode="livesum"
)
VALIDATOR_INDEX_PAGES = Gauge(
    "seo_engine_validator_index_pages",
    "Pages in a worker's validator index (the largest of the workers)",
    multiprocess_mode="livemax",
)
VALIDATOR_INDEX_ANSWERS = Counter(
    "seo_engine_validator_index_answers_total",
    "Conditional requests answered from the validator index, by result",
    ["result"],
)
LOOKUP_BATCH = Histogram(
    "seo_engine_lookup_batch_keys",
    "Keys per batched page lookup (concurrent requests sharing one query)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
READS = Counter(
    "seo_engine_db_reads_total",
    "Connections lent for reads with read replicas configured, by server (primary or a "
    "replica's host:port)",
    ["server"],
)
REPLICA_LAG = Gauge(
    "seo_engine_db_replica_lag_seconds",
    "How far a read replica is behind the primary (the largest a worker measured)",
    ["replica"],
    multiprocess_mode="livemax",
)
REPLICA_IN_USE = Gauge(
    "seo_engine_db_replica_in_use",
    "Workers sending reads to a read replica (0: it is behind or unreachable)",
    ["replica"],
    multiprocess_mode="livesum",
)
EXPORTS = Counter("seo_engine_exports_total", "NDJSON export streams started")
EXPORTS_ACTIVE = Gauge(
    "seo_engine_exports_active", "NDJSON export streams running", multiprocess_mode="livesum"
)

# Route classes: the label of every request, from its path alone.
OPERATIONS = frozenset({"/healthz", "/readyz", "/metrics"})
DOCS = frozenset({"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})
CRAWLERS = (
    b"googlebot",
    b"bingbot",
    b"yandex",
    b"baiduspider",
    b"duckduckbot",
    b"applebot",
    b"slurp",
    b"petalbot",
    b"gptbot",
    b"ccbot",
    b"bot/",
    b"crawler",
    b"spider",
)


def route_class(path: str) -> str:
    """page, document, list, export, api, hub, sitemap, robots, operations, docs, asset."""
    if path.startswith("/api/"):
        if path.startswith("/api/v1/pages/"):
            return "document"
        if path == "/api/v1/pages":
            return "list"
        if path == "/api/v1/export.ndjson":
            return "export"
        return "api"
    if path in OPERATIONS:
        return "operations"
    if path.startswith("/sitemap"):
        return "sitemap"
    if path == "/robots.txt":
        return "robots"
    if path in DOCS:
        return "docs"
    if path == "/favicon.ico" or path.startswith("/indexnow"):
        return "asset"
    if path.endswith("/") or path.count("/") < 2 or path.startswith(paths.RESERVED_PREFIXES):
        return "hub"
    return "page"


def agent_class(user_agent: bytes) -> str:
    """crawler for search engines and other bots (by their user agent), else other."""
    lowered = user_agent.lower()
    return "crawler" if any(mark in lowered for mark in CRAWLERS) else "other"


class RequestStats:
    """A worker's request counts and durations since the last `flush`, in plain Python."""

    __slots__ = ("_agents", "_buckets", "_counts", "_sums")

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}
        self._buckets: dict[str, list[int]] = {}  # per route: one count per bucket, +Inf last
        self._sums: dict[str, float] = {}
        self._agents: dict[bytes, str] = {}  # user agents seen: a crawler's never changes

    def agent(self, user_agent: bytes) -> str:
        found = self._agents.get(user_agent)
        if found is None:
            if len(self._agents) >= 4096:
                self._agents.clear()
            found = self._agents[user_agent] = agent_class(user_agent)
        return found

    def record(self, route: str, status: int, agent: str, seconds: float) -> None:
        key = (route, str(status), agent)
        self._counts[key] = self._counts.get(key, 0) + 1
        buckets = self._buckets.get(route)
        if buckets is None:
            buckets = self._buckets[route] = [0] * (len(SECONDS_BUCKETS) + 1)
            self._sums[route] = 0.0
        # The bucket `observe` would count it in: the first bound it does not exceed.
        buckets[bisect.bisect_left(SECONDS_BUCKETS, seconds)] += 1
        self._sums[route] += seconds

    def flush(self) -> None:
        """Add everything recorded to the Prometheus metrics, and start again."""
        counts, self._counts = self._counts, {}
        for key, count in counts.items():
            REQUESTS.labels(*key).inc(count)
        buckets, self._buckets = self._buckets, {}
        sums, self._sums = self._sums, {}
        for route, per_bucket in buckets.items():
            add_observations(DURATION.labels(route), per_bucket, sums[route])


def add_observations(histogram: Histogram, per_bucket: list[int], total: float) -> None:
    """Add to a histogram what `observe` would add for observations with these counts per
    bucket and this sum. prometheus-client has no public call for it: this uses its
    Histogram's `_buckets` and `_sum` (pinned below its next minor in pyproject.toml;
    tests/test_observability.py checks the result equals `observe`'s)."""
    for value, count in zip(histogram._buckets, per_bucket, strict=True):
        if count:
            value.inc(count)
    histogram._sum.inc(total)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.cache  # one setting per process: parsed once, not per scrape
def allowed_networks(setting: str) -> tuple[Network, ...]:
    parts = (part.strip() for part in setting.split(","))
    return tuple(ipaddress.ip_network(part, strict=False) for part in parts if part)


def may_read(client: str | None, networks: tuple[Network, ...]) -> bool:
    """Whether a client address may read /metrics."""
    if client is None:
        return False
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(address in network for network in networks)


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format: every worker's, added up."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def observe_acquire(seconds: float | None) -> None:
    """database.on_acquire: how long a borrow waited, or that it timed out."""
    if seconds is None:
        POOL_TIMEOUTS.inc()
    else:
        POOL_ACQUIRE.observe(seconds)


class Publisher:
    """Publishes a worker's figures that are counted in plain Python (requests, page cache,
    validator index) or read off objects (pool, cache bytes): every PUBLISH_SECONDS, and
    before this worker answers a scrape."""

    def __init__(
        self,
        requests: RequestStats,
        pool: Any,
        page_cache: PageCache,
        validators: ValidatorIndex,
        reads: ReadPools | None = None,
    ) -> None:
        self._requests = requests
        self._reads = reads
        self._pool = pool
        self._cache = page_cache
        self._validators = validators
        self._published: dict[str, int] = {}

    def publish(self) -> None:
        self._requests.flush()
        size = self._pool.get_size()
        POOL_CONNECTIONS.set(size)
        POOL_IN_USE.set(size - self._pool.get_idle_size())
        PAGE_CACHE_BYTES.set(self._cache.bytes)
        VALIDATOR_INDEX_PAGES.set(len(self._validators))
        self._add("cache_hits", self._cache.hits, PAGE_CACHE.labels("hit"))
        self._add("cache_misses", self._cache.misses, PAGE_CACHE.labels("miss"))
        self._add("cache_evictions", self._cache.evictions, PAGE_CACHE_EVICTIONS)
        self._add("index_hits", self._validators.hits, VALIDATOR_INDEX_ANSWERS.labels("current"))
        self._add("index_misses", self._validators.misses, VALIDATOR_INDEX_ANSWERS.labels("stale"))
        if self._reads is not None:
            self._publish_reads(self._reads)

    def _publish_reads(self, reads: ReadPools) -> None:
        self._add("primary reads", reads.primary_reads, READS.labels("primary"))
        for replica in reads.replicas:
            self._add(f"reads {replica.name}", replica.reads, READS.labels(replica.name))
            if replica.lag is not None:
                REPLICA_LAG.labels(replica.name).set(replica.lag)
            REPLICA_IN_USE.labels(replica.name).set(int(reads.state(replica) == "in use"))

    def _add(self, name: str, total: int, counter: Counter) -> None:
        delta = total - self._published.get(name, 0)
        if delta > 0:
            counter.inc(delta)
        self._published[name] = total

    async def keep_publishing(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(PUBLISH_SECONDS)
