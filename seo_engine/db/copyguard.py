"""A COPY FROM STDIN that fails as soon as its connection is cut, instead of hanging.

asyncpg (0.32) sends a COPY source chunk by chunk and, once its send buffer is full, waits
for the transport to drain before the next one. If the server ends the connection
meanwhile (`pg_terminate_backend`, a fast shutdown), nothing ever wakes that wait: the
copy hangs for good. generate sends multi-megabyte chunks, which fill the buffer every
time, so a terminated backend would freeze it instead of ending it with exit 69.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

import asyncpg

from seo_engine.db.database import Connection

T = TypeVar("T")

# What a cancelled copy may raise on its way out once the connection is gone.
_ON_THE_WAY_OUT: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)


async def guarded(connection: Connection, copy: Awaitable[T]) -> T:
    """Await `copy` (an operation on `connection`); if the connection closes first, cancel
    it and raise ConnectionDoesNotExistError, what asyncpg raises when it does notice."""
    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_close(_: object) -> None:
        if not lost.done():
            lost.set_result(None)

    copying = asyncio.ensure_future(copy)
    connection.add_termination_listener(on_close)
    try:
        await asyncio.wait((copying, lost), return_when=asyncio.FIRST_COMPLETED)
    finally:
        connection.remove_termination_listener(on_close)
        if not copying.done():  # the connection is gone, or our caller was cancelled
            copying.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_ON_THE_WAY_OUT):
                await copying
    if copying.cancelled():
        raise asyncpg.ConnectionDoesNotExistError("the connection was closed during a COPY")
    return copying.result()
