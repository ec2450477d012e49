"""The one settings object, read from the environment once at start."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


# Libpq-style URLs may list several hosts (`postgresql://user@h1:5433,h2:5434/db?…`).
def host_urls(url: str) -> list[str]:
    """One URL per host: the same URL for h1:5433 and for h2:5434. A URL without a host in
    its authority (`postgresql:///db?host=/run/postgresql`) is one URL; ValueError for an
    empty entry in a list of hosts."""
    parts = urlsplit(url)
    user, at, hosts = parts.netloc.rpartition("@")
    names = [host.strip() for host in hosts.split(",")]
    if len(names) == 1:
        return [url]
    if not all(names):
        raise ValueError("names an empty host in its list of hosts")
    return [urlunsplit(parts._replace(netloc=user + at + name)) for name in names]


def display_name(url: str) -> str:
    """host:port of a one-host URL, for logs, /readyz and metric labels (no credentials)."""
    return urlsplit(url).netloc.rpartition("@")[2] or "localhost"


class SettingsError(Exception):
    """A setting is missing or has a bad value; the message names it."""


class Settings(BaseSettings):
    """Every knob of seo-engine; environment variables are prefixed SEO_ENGINE_."""

    model_config = SettingsConfigDict(
        env_prefix="SEO_ENGINE_", extra="ignore", frozen=True, populate_by_name=True
    )

    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="PostgreSQL to use; unset means the embedded server in data_dir.",
    )
    read_database_url: str | None = Field(
        default=None,
        description="Read replicas (streaming standbys) for the server's reads: one host or "
        "several (`postgresql://user@host1:5432,host2:5432/db`); unset: reads go to the "
        "primary. The CLI, migrations, LISTEN and the cursor key always use the primary.",
    )
    replica_max_lag: float = Field(
        default=10.0,
        gt=0,
        le=86400,
        description="Seconds a replica may be behind the primary and still serve reads; "
        "past it reads go to the other replicas or the primary.",
    )
    data_dir: Path = Field(
        default=Path(".seo-engine"),
        description="Where the embedded PostgreSQL keeps its data.",
    )
    pool_min_size: int = Field(default=2, ge=0, le=1000)
    pool_max_size: int = Field(default=10, ge=1, le=1000)
    acquire_timeout: float = Field(
        default=2.0, gt=0, le=600, description="Seconds to wait for a pooled connection."
    )
    command_timeout: float = Field(
        default=30.0, gt=0, le=86400, description="Client-side seconds per statement."
    )
    statement_timeout: float = Field(
        default=30.0, gt=0, le=86400, description="Server-side seconds per statement."
    )
    idle_in_transaction_timeout: float = Field(default=60.0, gt=0, le=86400)
    statement_cache_size: int = Field(
        default=100, ge=0, le=100_000, description="0 behind a transaction-mode pooler."
    )
    export_concurrency: int = Field(
        default=2, ge=1, le=100, description="Exports streaming at once per process."
    )
    shutdown_grace: float = Field(
        default=10.0, gt=0, le=3600, description="Seconds in-flight requests get on SIGTERM."
    )
    page_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description="How long a worker may reuse a rendered page or document (0: no cache); "
        "a generate, seed or sites add clears every cache at once through LISTEN/NOTIFY.",
    )
    page_cache_mb: int = Field(
        default=32, ge=1, le=100_000, description="Memory each worker may use for that cache."
    )
    validator_index_pages: int = Field(
        default=10_000_000,
        ge=0,
        le=1_000_000_000,
        description="Most live pages a worker indexes (8 bytes each) to answer conditional "
        "requests without the database (0: off); over it, 304s are checked in the database.",
    )
    publish_interval: float = Field(
        default=30.0,
        ge=0,
        le=86400,
        description="Seconds between the server's checks for scheduled and drip pages that are "
        "due to go live (0: the server publishes nothing; `seo-engine publish release` does).",
    )
    indexnow_interval: float = Field(
        default=0.0,
        ge=0,
        le=86400,
        description="Seconds between the server's IndexNow pushes of sites with a key "
        "(0: none; `seo-engine indexnow push` sends them).",
    )
    purge: str | None = Field(
        default=None,
        description="After a generate or publishing step, the CDN keys and URLs it changed: "
        "`print` them, or POST them to this http(s) URL (unset: neither).",
    )
    purge_max_keys: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Most pages purged one by one; past it the site's key stands for all.",
    )
    robots_disallow_all: bool = Field(
        default=False, description="Staging: robots.txt disallows everything."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines for a person (text) or one JSON object each."
    )
    access_log: bool = Field(
        default=False, description="One log line per request: method, path, status, timing."
    )
    metrics: bool = Field(
        default=True, description="Count requests, pool, caches for /metrics (Prometheus)."
    )
    metrics_allow: str = Field(
        default="127.0.0.1/32,::1/128",
        description="Client networks (comma-separated CIDRs) that may read /metrics; "
        "others get 404.",
    )

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)  # ValueError names it
        return value

    @field_validator("purge")
    @classmethod
    def _print_or_web_address(cls, value: str | None) -> str | None:
        if value and value != "print" and not value.startswith(("http://", "https://")):
            raise ValueError("must be `print` or an http:// or https:// URL")
        return value or None

    @field_validator("database_url", "read_database_url")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must start with postgresql:// or postgres://")
        if value:
            host_urls(value)  # ValueError names the problem
        return value or None


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment, turning validation errors into SettingsError."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = str(item["loc"][0]) if item["loc"] else "settings"
            env_name = "DATABASE_URL" if name == "DATABASE_URL" else f"SEO_ENGINE_{name.upper()}"
            problems.append(f"{env_name}: {item['msg']}")
        raise SettingsError("invalid setting " + "; ".join(problems)) from None
    if settings.pool_min_size > settings.pool_max_size:
        raise SettingsError(
            "invalid setting SEO_ENGINE_POOL_MIN_SIZE: must not exceed SEO_ENGINE_POOL_MAX_SIZE"
        )
    return settings
