"""The sites an API process serves, refreshed from the database every few seconds."""

from __future__ import annotations

import time

import asyncpg

from seo_engine import database, sites
from seo_engine.sites import Site

REFRESH_SECONDS = 5.0


class UnknownSite(Exception):
    """No site matches; the message says what to do."""


class AmbiguousSite(Exception):
    """Several sites are served and the request did not say which."""


class SiteDirectory:
    """A small cache of the sites table: each request needs its site, sites rarely change."""

    def __init__(self) -> None:
        self._sites: list[Site] = []
        self._loaded_at = float("-inf")

    async def all(self, pool: asyncpg.Pool, acquire_timeout: float) -> list[Site]:
        if time.monotonic() - self._loaded_at > REFRESH_SECONDS:
            async with database.acquire(pool, acquire_timeout) as connection:
                self._sites = await sites.all_sites(connection)
            self._loaded_at = time.monotonic()
        return self._sites

    async def resolve(self, pool: asyncpg.Pool, acquire_timeout: float, slug: str | None) -> Site:
        """The site with this slug; without one, the only site there is."""
        known = await self.all(pool, acquire_timeout)
        if slug is not None:
            for site in known:
                if site.slug == slug:
                    return site
            raise UnknownSite(f"no site '{slug}'")
        if len(known) == 1:
            return known[0]
        if not known:
            raise UnknownSite("no site has been added yet")
        raise AmbiguousSite(
            "several sites are served; pass ?site= one of: " + ", ".join(s.slug for s in known)
        )

    async def by_host(self, pool: asyncpg.Pool, acquire_timeout: float, host: str) -> Site | None:
        """The site whose domain is this Host header; else the default (first) site."""
        known = await self.all(pool, acquire_timeout)
        host = host.lower()
        bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        for site in known:
            if site.domain in (host, bare):
                return site
        return known[0] if known else None
