"""Site definitions: read a site file (TOML), validate it, store it, and find sites."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

from seo_engine import paths
from seo_engine.db import changes
from seo_engine.db.database import Connection
from seo_engine.ingest import favicons
from seo_engine.ingest.content import ContentError, ContentTemplates

UPSERT = """
INSERT INTO sites (slug, name, base_url, domain, locale, path_pattern, content, content_version,
                   favicon, indexnow_key, indexnow_endpoint, publishing)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12::jsonb)
ON CONFLICT (slug) DO UPDATE SET
    name = excluded.name, base_url = excluded.base_url, domain = excluded.domain,
    locale = excluded.locale, path_pattern = excluded.path_pattern,
    content = excluded.content, content_version = excluded.content_version,
    favicon = excluded.favicon, indexnow_key = excluded.indexnow_key,
    indexnow_endpoint = excluded.indexnow_endpoint, publishing = excluded.publishing,
    updated_at = now()
WHERE (sites.name, sites.base_url, sites.domain, sites.locale, sites.path_pattern,
       sites.content_version, sites.favicon, sites.indexnow_key, sites.indexnow_endpoint,
       sites.publishing)
   IS DISTINCT FROM (excluded.name, excluded.base_url, excluded.domain, excluded.locale,
       excluded.path_pattern, excluded.content_version, excluded.favicon,
       excluded.indexnow_key, excluded.indexnow_endpoint, excluded.publishing)
RETURNING (xmax = 0) AS created
"""
SELECT_COLUMNS = (
    "id, slug, name, base_url, domain, locale, path_pattern, content, content_version, "
    "favicon_tag, indexnow_key, indexnow_endpoint, publishing"
)
SELECT_FAVICON = "SELECT favicon, favicon_tag FROM sites WHERE id = $1"
SELECT_ALL = f"SELECT {SELECT_COLUMNS} FROM sites ORDER BY id"  # noqa: S608 (constant)
SELECT_BY_SLUG = f"SELECT {SELECT_COLUMNS} FROM sites WHERE slug = $1"  # noqa: S608 (constant)


class SiteError(Exception):
    """A site file is invalid, or a site cannot be found; the message says which and why."""


@dataclass(frozen=True)
class GenerateOptions:
    min_population: int = 0
    nearby_radius_km: float = 150.0


@dataclass(frozen=True)
class QualityRules:
    """The site file's [quality] table: when a page is good enough to be indexed."""

    index_threshold: float = 60.0  # score (0-100) a page needs to be indexable
    near_duplicate: float = 0.8  # similarity to a sibling (0-1) that keeps a page out
    min_body_words: int = 300  # body words that earn every substance point
    thin_body_words: int = 120  # fewer body words keep a page out
    min_unique_data: float = 0.1  # share of words from the page's own data (0-1)
    gate: bool = True  # false: pages are neither compared nor scored, and all are indexable


# Each rule: its type and the largest value it takes.
QUALITY_RULES: dict[str, tuple[type, float]] = {
    "index_threshold": (float, 100),
    "near_duplicate": (float, 1),
    "min_body_words": (int, 100_000),
    "thin_body_words": (int, 100_000),
    "min_unique_data": (float, 1),
}


INDEXNOW_KEY = re.compile(r"[a-zA-Z0-9-]{8,128}")  # the protocol's key format
INDEXNOW_ENDPOINT = "https://api.indexnow.org/indexnow"


@dataclass(frozen=True)
class IndexNow:
    """A site's IndexNow key (served at /{key}.txt) and the endpoint its URLs go to."""

    key: str
    endpoint: str = INDEXNOW_ENDPOINT


NEW_PAGE_STATES = ("live", "queued", "draft")
RELEASE_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
MAX_PER_DAY = 1_000_000


@dataclass(frozen=True)
class Publishing:
    """The site file's [publishing] table: the state new pages start in, and the drip: how
    many queued pages go live a day (best quality first), and at what time (UTC)."""

    new_pages: str = "live"  # live, queued (the drip backlog) or draft
    per_day: int = 0  # 0: no drip; queued pages wait for `seo-engine publish`
    at: str = "00:00"  # HH:MM, UTC: when each day's pages go live

    @property
    def release_minute(self) -> int:
        """Minutes after midnight UTC of the daily release."""
        hours, minutes = self.at.split(":")
        return int(hours) * 60 + int(minutes)


@dataclass(frozen=True)
class Site:
    id: int
    slug: str
    name: str
    base_url: str
    domain: str
    locale: str
    path_pattern: str
    content: dict[str, Any]
    content_version: str
    options: GenerateOptions = field(default_factory=GenerateOptions)
    quality: QualityRules = field(default_factory=QualityRules)
    # A hash of the site's own favicon (stored in the database); None: the default icon.
    favicon_tag: str | None = None
    indexnow: IndexNow | None = None  # the site file's [indexnow] table, if any
    publishing: Publishing = field(default_factory=Publishing)

    def page_path(self, service_slug: str, location_slug: str) -> str:
        """The path of the page of a service in a location, by the site's path pattern."""
        return paths.page_path(self.path_pattern, service_slug, location_slug)


@dataclass(frozen=True)
class SiteDefinition:
    slug: str
    name: str
    base_url: str
    locale: str
    path_pattern: str
    content: dict[str, Any]
    favicon: bytes | None = None  # the icon file the site file names, checked
    indexnow: IndexNow | None = None
    publishing: Publishing = field(default_factory=Publishing)

    @property
    def domain(self) -> str:
        return urlsplit(self.base_url).netloc.lower()

    @property
    def content_version(self) -> str:
        canonical = orjson.dumps(self.content, option=orjson.OPT_SORT_KEYS)
        return hashlib.blake2b(canonical, digest_size=8).hexdigest()


def _text(data: dict[str, Any], name: str, source: str, default: str | None = None) -> str:
    value = data.get(name, default)
    if not isinstance(value, str) or not value.strip():
        raise SiteError(f"{source}: '{name}' must be a non-empty string")
    return value.strip()


def _options(data: Any, source: str) -> dict[str, float | int]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SiteError(f"{source}: [generate] must be a table")
    known = {"min_population": int, "nearby_radius_km": float}
    options: dict[str, float | int] = {}
    for name, value in data.items():
        if name == "index_threshold":
            raise SiteError(
                f"{source}: [generate] index_threshold has moved to [quality], as a score "
                "from 0 to 100 (0.6 becomes 60)"
            )
        kind = known.get(name)
        if kind is None:
            raise SiteError(f"{source}: [generate] has unknown option '{name}'")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise SiteError(f"{source}: [generate] {name} must be a number >= 0")
        options[name] = kind(value)
    return options


def _quality(data: Any, source: str) -> dict[str, float | int | bool]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SiteError(f"{source}: [quality] must be a table")
    rules: dict[str, float | int | bool] = {}
    for name, value in data.items():
        if name == "gate":
            if not isinstance(value, bool):
                raise SiteError(f"{source}: [quality] gate must be true or false")
            rules[name] = value
            continue
        if name not in QUALITY_RULES:
            known = ", ".join([*QUALITY_RULES, "gate"])
            raise SiteError(f"{source}: [quality] has unknown rule '{name}' (known: {known})")
        kind, largest = QUALITY_RULES[name]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not 0 <= value <= largest or (kind is int and value != int(value)):
            what = "a whole number" if kind is int else "a number"
            raise SiteError(f"{source}: [quality] {name} must be {what} from 0 to {largest:g}")
        rules[name] = kind(value)
    if rules.get("thin_body_words", 0) > rules.get("min_body_words", QualityRules.min_body_words):
        raise SiteError(f"{source}: [quality] thin_body_words must not exceed min_body_words")
    return rules


def parse_definition(data: dict[str, Any], source: str) -> SiteDefinition:
    """Validate a parsed site file; raise SiteError naming the first problem."""
    slug = _text(data, "slug", source)
    if not paths.SLUG_RE.fullmatch(slug) or len(slug) > paths.MAX_SITE_SLUG:
        raise SiteError(f"{source}: slug '{slug}' must be lowercase letters, digits and hyphens")
    base_url = _text(data, "base_url", source).rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        raise SiteError(f"{source}: base_url must look like https://www.example.com (no path)")
    pattern = _text(data, "path_pattern", source, paths.DEFAULT_PATTERN)
    if not paths.PATTERN_SYNTAX.match(pattern) or any(p not in pattern for p in paths.PLACEHOLDERS):
        raise SiteError(
            f"{source}: path_pattern '{pattern}' must start with / and contain "
            "{service} and {location}"
        )
    if "//" in pattern or "/." in pattern:
        raise SiteError(f"{source}: path_pattern must not contain // or /.")
    if paths.first_segment(pattern) in paths.RESERVED_SEGMENTS:
        raise SiteError(
            f"{source}: path_pattern must not start with /{paths.first_segment(pattern)}/, "
            "which the app serves itself"
        )
    content = data.get("content")
    if not isinstance(content, dict):
        raise SiteError(f"{source}: a [content] table with the page templates is required")
    content = {
        **content,
        "generate": _options(data.get("generate"), source),
        "quality": _quality(data.get("quality"), source),
    }
    try:
        ContentTemplates(content)
    except ContentError as error:
        raise SiteError(f"{source}: {error}") from None
    return SiteDefinition(
        slug=slug,
        name=_text(data, "name", source),
        base_url=base_url,
        locale=_text(data, "locale", source, "en"),
        path_pattern=pattern,
        content=content,
        indexnow=_indexnow(data.get("indexnow"), source),
        publishing=_publishing(data.get("publishing"), source),
    )


def _publishing(data: Any, source: str) -> Publishing:
    """The [publishing] table: `new_pages` (live, queued or draft), `per_day` (the drip's
    pages a day) and `at` (its daily release time, HH:MM UTC)."""
    if data is None:
        return Publishing()
    known = ("new_pages", "per_day", "at")
    if not isinstance(data, dict):
        raise SiteError(f"{source}: [publishing] must be a table of {', '.join(known)}")
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise SiteError(
            f"{source}: [publishing] has unknown option '{unknown[0]}' (known: {', '.join(known)})"
        )
    new_pages = data.get("new_pages", "live")
    if new_pages not in NEW_PAGE_STATES:
        raise SiteError(f"{source}: [publishing] new_pages must be one of live, queued, draft")
    per_day = data.get("per_day", 0)
    if isinstance(per_day, bool) or not isinstance(per_day, int) or not 0 <= per_day <= MAX_PER_DAY:
        raise SiteError(
            f"{source}: [publishing] per_day must be a whole number from 0 to {MAX_PER_DAY:,}"
        )
    at = data.get("at", "00:00")
    if not isinstance(at, str) or not RELEASE_TIME.fullmatch(at):
        raise SiteError(f"{source}: [publishing] at must be a time of day as HH:MM (UTC)")
    if new_pages == "queued" and per_day == 0:
        raise SiteError(
            f'{source}: [publishing] new_pages = "queued" needs per_day, the pages to publish a day'
        )
    return Publishing(new_pages, per_day, at)


def _indexnow(data: Any, source: str) -> IndexNow | None:
    """The [indexnow] table: `key` (8-128 letters, digits or hyphens) and `endpoint`."""
    if data is None:
        return None
    if not isinstance(data, dict) or set(data) - {"key", "endpoint"}:
        raise SiteError(f"{source}: [indexnow] must be a table of key and endpoint")
    key = data.get("key")
    if not isinstance(key, str) or not INDEXNOW_KEY.fullmatch(key):
        raise SiteError(f"{source}: [indexnow] key must be 8-128 letters, digits or hyphens")
    endpoint = data.get("endpoint", INDEXNOW_ENDPOINT)
    parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise SiteError(f"{source}: [indexnow] endpoint must be an http(s) URL")
    return IndexNow(key, endpoint)


def read_favicon(site_file: Path, name: str) -> bytes:
    """The favicon a site file names (relative to the site file's folder), checked."""
    target = site_file.parent / name
    try:
        with target.open("rb") as icon:
            body = icon.read(favicons.MAX_BYTES + 1)  # enough to know it is too big
        favicons.check(body)
    except OSError as error:
        raise SiteError(f"{site_file}: favicon {target}: {error.strerror}") from None
    except favicons.FaviconError as error:
        raise SiteError(f"{site_file}: favicon {target} {error}") from None
    return body


def load_definition(path: Path) -> SiteDefinition:
    """Read and validate a site file, and the favicon file it names, if any."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SiteError(f"{path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise SiteError(f"{path}: is not valid UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise SiteError(f"{path}: invalid TOML: {error}") from None
    definition = parse_definition(data, str(path))
    if "favicon" not in data:
        return definition
    favicon = read_favicon(path, _text(data, "favicon", str(path)))
    return dataclasses.replace(definition, favicon=favicon)


def _stored_rules(content: dict[str, Any]) -> tuple[GenerateOptions, QualityRules]:
    """The options and quality rules of a stored site. A site stored before the quality
    gate kept its threshold (0-1) in [generate]: it becomes the gate's (0-100)."""
    options = dict(content.get("generate", {}))
    rules = dict(content.get("quality", {}))
    legacy = options.pop("index_threshold", None)
    if legacy is not None and "quality" not in content:
        rules["index_threshold"] = float(legacy) * 100
    return GenerateOptions(**options), QualityRules(**rules)


def _site(row: asyncpg.Record) -> Site:
    content = _json(row["content"])
    options, rules = _stored_rules(content)
    return Site(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        base_url=row["base_url"],
        domain=row["domain"],
        locale=row["locale"],
        path_pattern=row["path_pattern"],
        content=content,
        content_version=row["content_version"],
        options=options,
        quality=rules,
        favicon_tag=row["favicon_tag"],
        indexnow=(
            IndexNow(row["indexnow_key"], row["indexnow_endpoint"] or INDEXNOW_ENDPOINT)
            if row["indexnow_key"]
            else None
        ),
        publishing=Publishing(**_json(row["publishing"])),
    )


def _json(value: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(value) if isinstance(value, str) else value
    return loaded


async def store(connection: Connection, definition: SiteDefinition) -> tuple[Site, str]:
    """Insert or update a site by slug; return it and 'created', 'updated' or 'unchanged'."""
    try:
        created = await connection.fetchval(
            UPSERT,
            definition.slug,
            definition.name,
            definition.base_url,
            definition.domain,
            definition.locale,
            definition.path_pattern,
            orjson.dumps(definition.content).decode(),
            definition.content_version,
            definition.favicon,
            None if definition.indexnow is None else definition.indexnow.key,
            None if definition.indexnow is None else definition.indexnow.endpoint,
            orjson.dumps(dataclasses.asdict(definition.publishing)).decode(),
        )
    except asyncpg.UniqueViolationError:
        raise SiteError(f"another site already uses the domain {definition.domain}") from None
    outcome = "unchanged" if created is None else ("created" if created else "updated")
    if outcome == "updated":  # templates or base URL may have changed: drop cached pages
        await changes.notify(connection)
    return await find(connection, definition.slug), outcome


def as_defined(site: Site, definition: SiteDefinition) -> Site:
    """A stored site as a site file defines it now, without storing it (for previews)."""
    options, rules = _stored_rules(definition.content)
    return dataclasses.replace(
        site,
        name=definition.name,
        base_url=definition.base_url,
        domain=definition.domain,
        locale=definition.locale,
        path_pattern=definition.path_pattern,
        content=definition.content,
        content_version=definition.content_version,
        options=options,
        quality=rules,
        publishing=definition.publishing,
    )


async def stored_favicon(connection: Connection, site_id: int) -> tuple[bytes, str] | None:
    """A site's own favicon and its tag, None if it has none (or no longer exists)."""
    row = await connection.fetchrow(SELECT_FAVICON, site_id)
    if row is None or row["favicon"] is None:
        return None
    return bytes(row["favicon"]), row["favicon_tag"]


async def all_sites(connection: Connection) -> list[Site]:
    """Every site, oldest first (the first one is the default site)."""
    return [_site(row) for row in await connection.fetch(SELECT_ALL)]


async def find(connection: Connection, slug: str | None) -> Site:
    """The site with this slug; without a slug, the only site there is."""
    if slug is not None:
        row = await connection.fetchrow(SELECT_BY_SLUG, slug)
        if row is None:
            raise SiteError(f"no site '{slug}'; see `seo-engine sites list`")
        return _site(row)
    sites = await all_sites(connection)
    if not sites:
        raise SiteError("no site yet; add one with `seo-engine sites add seeds/site.toml`")
    if len(sites) > 1:
        names = ", ".join(site.slug for site in sites)
        raise SiteError(f"several sites ({names}); choose one with --site")
    return sites[0]
