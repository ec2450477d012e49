"""uvicorn's httptools protocol, sending each response's head and body in one write.

uvicorn writes a response's status line and headers as soon as the app starts the
response, and its body when the app sends it: two `send()` calls and, with TCP_NODELAY,
two TCP segments per response, each waking the client. Writes made while the event loop
runs one callback are held and leave together when it ends (`call_soon`), so that a
response sent in one go (every response of the hot paths) costs one system call; nothing
waits longer than that loop iteration.

uvicorn's protocol classes are not a public API: this relies on `connection_made` taking
the transport and on `self.loop`, so uvicorn is pinned below its next minor (pyproject.toml)
and tests/test_protocol.py checks that its responses are byte for byte uvicorn's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes within one loop iteration are sent as one `writelines`."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._held is None:
            self._held = [data]
            self._loop.call_soon(self.flush)
        else:
            self._held.append(data)

    def writelines(self, lines: Iterable[bytes]) -> None:
        for data in lines:  # held too, so that nothing overtakes what is held
            self.write(data)

    def flush(self) -> None:
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.writelines(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        # Everything else (is_closing, pause_reading, get_extra_info, ...) as the real one.
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """`--http seo_engine.serve.protocol:CoalescingHttpToolsProtocol`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
