"""Which pages are live, as the links of other pages need it (docs/publishing.md).

A page links only to live pages. `generate` builds links from this (its workers load it
once, and nothing can publish while a generate holds the site's publishing lock), and so
does every publishing step that changes what is live (release.py): one rule, one place.

Held compactly: a default for every page, and the sorted keys of the pages that differ
from it. The default is the state a new page starts in (the site file's [publishing]);
the exceptions are the stored pages that are not live (usually none) or, on a site whose
new pages wait, the stored pages that are live (at most what the drip has released).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from seo_engine.db.database import Connection
from seo_engine.generate import copyrows
from seo_engine.ingest.sites import Site

# Advisory lock (class, site id) under which what is live changes: every publishing step
# takes it, and a generate holds it from its start to its commit, so the links it builds
# and the states it builds them from cannot drift apart.
PUBLISH_LOCK_CLASS = 0x5E0F
HOLD_PUBLISH_LOCK = "SELECT pg_advisory_xact_lock($1, $2)"
# A new page's state in this transaction (the pages.state column's default reads it).
NEW_PAGE_STATE = "SELECT set_config('seo_engine.new_page_state', $1, true)"

# The drip's clock runs while the backlog holds pages and stops when it is empty, so that a
# backlog filled again later does not catch up the idle days.
DRIP_CLOCK = """
UPDATE sites SET drip_from = CASE
    WHEN EXISTS (SELECT 1 FROM pages p
                 WHERE p.site_id = $1 AND p.state = 'queued' AND p.deleted_at IS NULL)
    THEN coalesce(greatest(drip_from, $2), now()) END
WHERE id = $1
"""
# The serving rule, written once: a page is served when it is neither removed nor waiting.
SERVED = "p.deleted_at IS NULL AND p.state = 'live'"
# What the change feeds list: pages served, and tombstones of pages removed or unpublished
# (not of pages still waiting for their first publication).
IN_FEEDS = "(p.state = 'live' OR p.deleted_at IS NOT NULL OR p.unpublished_at IS NOT NULL)"

# Keys of the stored pages not live (the partial index pages_unpublished holds exactly
# those), or of the live ones; read by binary COPY, without a Python object per page.
NOT_LIVE = """
SELECT (service_id << 32) | location_id FROM pages p
WHERE site_id = $1 AND state <> 'live' AND deleted_at IS NULL
"""
LIVE = f"""
SELECT (service_id << 32) | location_id FROM pages p WHERE site_id = $1 AND {SERVED}
"""  # noqa: S608 (constant)
KEY_ROW = np.dtype([("fields", ">i2"), ("size", ">i4"), ("key", ">i8")])


def key(service_id: int, location_id: int) -> int:
    """A page's key: its service and location ids in one int64 (ids stay below 2**32)."""
    return (service_id << 32) | location_id


@dataclass(frozen=True)
class Visibility:
    live_by_default: bool  # the state of a page not in `exceptions`
    exceptions: npt.NDArray[np.int64]  # sorted keys of the pages that differ

    def live(self, service_id: int, location_id: int) -> bool:
        wanted = key(service_id, location_id)
        at = int(np.searchsorted(self.exceptions, wanted))
        found = at < len(self.exceptions) and int(self.exceptions[at]) == wanted
        return self.live_by_default != found


ALL_LIVE = Visibility(True, np.zeros(0, dtype=np.int64))


async def load(connection: Connection, site: Site) -> Visibility:
    """The site's pages as they stand in `connection`'s view (a page not stored yet is in
    the state new pages start in)."""
    live_by_default = site.publishing.new_pages == "live"
    stream = io.BytesIO()
    query = NOT_LIVE if live_by_default else LIVE
    await connection.copy_from_query(query, site.id, output=stream, format="binary")
    data = stream.getbuffer()
    rows = np.frombuffer(
        data[len(copyrows.HEADER) : len(data) - len(copyrows.TRAILER)], dtype=KEY_ROW
    )
    keys = rows["key"].astype(np.int64)
    keys.sort()
    return Visibility(live_by_default, keys)
