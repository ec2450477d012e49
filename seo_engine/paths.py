"""URL paths: what a slug is, how a site's path pattern makes page paths, and the first
path segments the app keeps for its own pages and files. Every stage reads these here."""

from __future__ import annotations

import re
from functools import lru_cache

SLUG = "[a-z0-9]+(?:-[a-z0-9]+)*"  # lowercase words joined by single hyphens
SLUG_ANCHORED = f"^{SLUG}$"  # for validators that search rather than match whole strings
SLUG_RE = re.compile(SLUG)  # use .fullmatch
MAX_SLUG = 120  # a service's or location's slug
MAX_SITE_SLUG = 60

PLACEHOLDERS = ("{service}", "{location}")
DEFAULT_PATTERN = "/{service}/{location}"
# A site's path_pattern: segments of lowercase letters, digits, _ - . and the placeholders.
PATTERN_SYNTAX = re.compile(r"^(/[a-z0-9{}_\-.]*)+$")

# First path segments the app serves itself (the API, hubs, sitemaps, operations, files):
# no service slug and no path pattern may start with one. Names with a dot (robots.txt)
# are listed as a slug would spell them, so that no hub looks like one of them either.
RESERVED_SEGMENTS = frozenset(
    (
        "api",
        "in",
        "regions",
        "sitemaps",
        "static",
        "docs",
        "openapi-json",
        "healthz",
        "readyz",
        "metrics",
        "robots-txt",
        "sitemap-xml",
        "favicon-ico",
    )
)
RESERVED_PREFIXES = tuple(f"/{segment}/" for segment in sorted(RESERVED_SEGMENTS))


def first_segment(path: str) -> str:
    """`/api/v1/pages` -> `api`."""
    return path[1:].split("/", 1)[0]


def page_path(pattern: str, service_slug: str, location_slug: str) -> str:
    """The path of a service's page in a location under a site's path pattern."""
    return pattern.replace("{service}", service_slug).replace("{location}", location_slug)


@lru_cache(maxsize=64)
def page_path_regex(pattern: str) -> re.Pattern[str]:
    """The paths a site's path pattern produces (use .fullmatch), e.g. /{service}/{location}."""
    parts = re.split(r"(\{service\}|\{location\})", pattern)
    return re.compile("".join(SLUG if part in PLACEHOLDERS else re.escape(part) for part in parts))


@lru_cache(maxsize=64)
def _page_slugs_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\{service\}|\{location\})", pattern)
    groups = {"{service}": f"(?P<service>{SLUG})", "{location}": f"(?P<location>{SLUG})"}
    return re.compile("".join(groups.get(part, re.escape(part)) for part in parts))


def page_slugs(pattern: str, path: str) -> tuple[str, str] | None:
    """(service slug, location slug) of a page path under a site's path pattern."""
    found = _page_slugs_regex(pattern).fullmatch(path)
    return (found["service"], found["location"]) if found else None
