"""Each API worker's cache of what it served: page documents, rendered pages, and the
versions that conditional requests check, so that hot pages cost no database round trip.

Entries live at most `page_cache_seconds`. Whatever changes pages sends a notification
(db/changes.py) and every worker's listener clears its cache when that commits. Behind a
transaction-mode pooler LISTEN does not work, and the time limit alone bounds how stale a
cached page can be.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime

from seo_engine.serve import compression

# What an entry costs beside its bodies and headers: its key, the Entry and the map's slot;
# and each header beside its bytes: a tuple of two bytes objects and a list slot (measured
# with tracemalloc, tests/test_hotpath.py: a cache of version-only entries, about 1.5 KB
# each with the surrogate keys, stays within its budget).
ENTRY_OVERHEAD_BYTES = 320
HEADER_OVERHEAD_BYTES = 136


@dataclass(slots=True)
class Entry:
    """One response as sent: its validators, headers and body (None: version only)."""

    etag: str
    modified: datetime | None
    headers: list[tuple[bytes, bytes]]
    body: bytes | None
    expires: float = 0.0
    _gzipped: bytes | None = field(default=None, repr=False)

    def gzipped(self) -> bytes | None:
        """The body compressed once (and kept), or None when it is too small to bother."""
        if self.body is None or len(self.body) < compression.MIN_BYTES:
            return None
        if self._gzipped is None:
            self._gzipped = compression.gzip_once(self.body)
        return self._gzipped

    def size(self) -> int:
        headers = sum(
            len(name) + len(value) + HEADER_OVERHEAD_BYTES for name, value in self.headers
        )
        return len(self.body or b"") + len(self._gzipped or b"") + headers + ENTRY_OVERHEAD_BYTES


class PageCache:
    """A least-recently-used map with a byte budget and a time limit per entry."""

    def __init__(self, seconds: float, max_bytes: int) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._bytes = 0
        # Counted here (plain integers: nothing per request costs more), published to the
        # metrics every few seconds (app.py).
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: Hashable) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if entry.expires < time.monotonic():
            self._drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: Hashable, entry: Entry) -> None:
        if self.seconds <= 0:
            return
        if key in self._entries:
            self._drop(key)
        entry.expires = time.monotonic() + self.seconds
        self._entries[key] = entry
        self._bytes += entry.size()
        while self._bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))
            self.evictions += 1

    def gzipped(self, key: Hashable, entry: Entry) -> bytes | None:
        """The entry's gzipped body, counted against the budget if the entry is stored."""
        before = entry.size()
        compressed = entry.gzipped()
        if self._entries.get(key) is entry:
            self._bytes += entry.size() - before
        return compressed

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def pages_changed(self, listening: bool) -> None:
        """Forget everything (the time limit bounds staleness when nobody is listening)."""
        self.clear()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def _drop(self, key: Hashable) -> None:
        self._bytes -= self._entries.pop(key).size()
