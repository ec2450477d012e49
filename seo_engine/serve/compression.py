"""gzip: one place for how the app compresses, with what, at which level, measured.

Bodies kept in the page cache are compressed once and sent many times, so a better ratio
is worth its time there (the standard library's zlib at CACHED_LEVEL). Everything
compressed as it is sent (the NDJSON export, sitemaps, lists, hubs) goes through ISA-L's
deflate (the `isal` package) at STREAM_LEVEL: on the export's bytes it compresses 3.8x
as fast as zlib's fastest level, to a smaller size, so that a client that accepts gzip,
which every real one does, is not served much slower than one that does not
(bench/compression_bench.py; figures in bench/RESULTS.md).
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

from isal import isal_zlib
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIN_BYTES = 1024  # smaller bodies are sent as they are
CACHED_LEVEL = 6  # zlib's 1-9
STREAM_LEVEL = 1  # ISA-L's 0-3
GZIP_CONTAINER = 31  # window bits for a gzip header and trailer (zlib's and ISA-L's)
COMPRESSIBLE = (
    b"text/",
    b"application/json",
    b"application/problem+json",
    b"application/x-ndjson",
    b"application/xml",
)


def gzip_once(body: bytes) -> bytes:
    """A body that will be kept and sent many times, compressed."""
    return gzip.compress(body, compresslevel=CACHED_LEVEL, mtime=0)


async def gzip_stream(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A streamed body, compressed as it goes (a .gz file, e.g. a sitemap shard)."""
    compressor = _stream_compressor()
    async for chunk in chunks:
        if data := compressor.compress(chunk):
            yield data
    yield compressor.flush()


def _stream_compressor() -> isal_zlib.Compress:
    return isal_zlib.compressobj(STREAM_LEVEL, isal_zlib.DEFLATED, GZIP_CONTAINER)


def accepts_gzip(scope: Scope) -> bool:
    return any(name == b"accept-encoding" and b"gzip" in value for name, value in scope["headers"])


class Compression:
    """ASGI middleware: gzip for the responses that did not negotiate their encoding
    themselves. A response that already says `Vary: Accept-Encoding` (the page and
    document answers, which keep their compressed bodies in the page cache) or has a
    Content-Encoding, or whose type does not compress, passes as it is; the others get
    `Vary: Accept-Encoding`, and are compressed for a client that accepts gzip."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _Compressor(send, accepts_gzip(scope)).send)


def _negotiable(start: Message) -> bool:
    if start["status"] in (204, 206, 304):
        return False
    for name, value in start.get("headers", ()):
        if name == b"content-encoding":
            return False
        if name == b"vary" and b"accept-encoding" in value.lower():
            return False
        if name == b"content-type" and not value.startswith(COMPRESSIBLE):
            return False
    return True


class _Compressor:
    """One response's way through Compression."""

    __slots__ = ("accepts", "compressor", "held", "send_on")

    def __init__(self, send: Send, accepts: bool) -> None:
        self.send_on = send
        self.accepts = accepts
        self.held: Message | None = None  # the start, until the first body part is seen
        self.compressor: isal_zlib.Compress | None = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start" and _negotiable(message):
            self.held = message
            return
        if kind == "http.response.body" and self.held is not None:
            await self._first_body(self.held, message)
            self.held = None
            return
        if kind == "http.response.body" and self.compressor is not None:
            data = self.compressor.compress(message.get("body", b""))
            if not message.get("more_body", False):
                data += self.compressor.flush()
            message = {**message, "body": data}
        await self.send_on(message)

    async def _first_body(self, start: Message, message: Message) -> None:
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        headers = [*start.get("headers", ()), (b"vary", b"Accept-Encoding")]
        if self.accepts and (more or len(body) >= MIN_BYTES):
            self.compressor = _stream_compressor()
            headers = [(n, v) for n, v in headers if n != b"content-length"]
            headers.append((b"content-encoding", b"gzip"))
            body = self.compressor.compress(body)
            if not more:
                body += self.compressor.flush()
                headers.append((b"content-length", b"%d" % len(body)))
            message = {**message, "body": body}
        await self.send_on({**start, "headers": headers})
        await self.send_on(message)
