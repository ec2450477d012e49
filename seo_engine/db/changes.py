"""Change notifications: whatever changes pages (`generate`, `seed`, `sites add`) sends
NOTIFY on CHANNEL in its transaction, and each API worker's listener tells its caches when
that commits. A lost listener counts as a change: changes may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from seo_engine.db import database
from seo_engine.settings import Settings

CHANNEL = "seo_engine_changes"
NOTIFY = f"SELECT pg_notify('{CHANNEL}', '')"
RECONNECT_SECONDS = 1.0
log = logging.getLogger(__name__)


async def notify(connection: database.Connection) -> None:
    """Tell every listening worker that pages change when this transaction commits."""
    await connection.execute(NOTIFY)


class Watcher(Protocol):
    def pages_changed(self, listening: bool) -> None:
        """Pages may have changed; `listening`: whether the next change will be heard of."""


async def listen(dsn: str, settings: Settings, *watchers: Watcher) -> None:
    """Tell `watchers` (the page cache, the validator index) whenever pages change, until
    cancelled. A lost connection counts as a change (changes may have been missed) and is
    reopened.
    """

    def changed(listening: bool) -> None:
        for watcher in watchers:
            watcher.pages_changed(listening)

    while True:
        try:
            await _listen_once(dsn, settings, changed)
        except database.UNAVAILABLE as error:
            log.debug("change listener: %s", type(error).__name__)
        changed(False)
        await asyncio.sleep(RECONNECT_SECONDS)


async def _listen_once(dsn: str, settings: Settings, changed: Callable[[bool], None]) -> None:
    connection = await database.connect(dsn, settings)
    try:
        lost = asyncio.Event()
        connection.add_termination_listener(lambda *_: lost.set())
        await connection.add_listener(CHANNEL, lambda *_: changed(True))
        changed(True)
        await lost.wait()
    finally:
        if not connection.is_closed():
            with contextlib.suppress(*database.CONNECTION_ERRORS):
                await connection.close(timeout=2)
