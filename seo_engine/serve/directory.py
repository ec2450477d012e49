"""The sites an API process serves, refreshed from the database every few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from seo_engine.db import database
from seo_engine.ingest import sites
from seo_engine.ingest.sites import Site

REFRESH_SECONDS = 5.0
log = logging.getLogger(__name__)


class UnknownSite(Exception):
    """No site matches; the message says what to do."""


class AmbiguousSite(Exception):
    """Several sites are served and the request did not say which."""


class SiteDirectory:
    """A small cache of the sites table: each request needs its site, sites rarely change."""

    def __init__(self) -> None:
        self._sites: list[Site] = []
        self._loaded_at = float("-inf")
        self._refresh: asyncio.Task[None] | None = None

    async def all(self, pool: database.ReadSource, acquire_timeout: float) -> list[Site]:
        """Every site, refreshed at most every REFRESH_SECONDS; with no site known yet,
        the request loads them itself."""
        if not self._sites and time.monotonic() - self._loaded_at > REFRESH_SECONDS:
            await self._load(pool, acquire_timeout)
        return self.known(pool, acquire_timeout)

    def known(self, pool: database.ReadSource, acquire_timeout: float) -> list[Site]:
        """The sites known now, starting a refresh in the background when one is due.

        Known sites are served while one refresh runs: every request refreshing at once
        (each with a connection of its own) stalled busy workers for seconds. Empty until
        `all` has loaded them once.
        """
        if (
            time.monotonic() - self._loaded_at > REFRESH_SECONDS
            and self._sites
            and (self._refresh is None or self._refresh.done())
        ):
            self._refresh = asyncio.create_task(self._refresh_quietly(pool, acquire_timeout))
        return self._sites

    async def close(self) -> None:
        """Stop a refresh still running (at shutdown)."""
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh

    async def _load(self, pool: database.ReadSource, acquire_timeout: float) -> None:
        async with database.acquire(pool, acquire_timeout) as connection:
            self._sites = await sites.all_sites(connection)
        self._loaded_at = time.monotonic()

    async def _refresh_quietly(self, pool: database.ReadSource, acquire_timeout: float) -> None:
        try:
            await self._load(pool, acquire_timeout)
        except database.UNAVAILABLE as error:  # the requests that need it report outages
            log.debug("sites not refreshed: %s", type(error).__name__)

    async def resolve(
        self, pool: database.ReadSource, acquire_timeout: float, slug: str | None
    ) -> Site:
        """The site with this slug; without one, the only site there is."""
        return site_for_slug(await self.all(pool, acquire_timeout), slug)

    async def by_host(
        self, pool: database.ReadSource, acquire_timeout: float, host: str
    ) -> Site | None:
        """The site whose domain is this Host header; else the default (first) site."""
        return site_for_host(await self.all(pool, acquire_timeout), host)


def site_for_slug(known: list[Site], slug: str | None) -> Site:
    """The site with this slug; without one, the only site there is."""
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


def site_for_host(known: list[Site], host: str) -> Site | None:
    """The site whose domain is this Host header; else the default (first) site."""
    host = host.lower()
    bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    for site in known:
        if site.domain in (host, bare):
            return site
    return known[0] if known else None
