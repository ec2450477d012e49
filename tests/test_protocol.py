"""The HTTP protocol `seo-engine serve` runs: a response's writes leave in one system call."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from seo_engine.serve.protocol import CoalescingHttpToolsProtocol, CoalescingTransport
from tests.conftest import make_settings
from tests.live import live_server
from tests.pins import pinned_below_next_minor

DOCUMENT = "/api/v1/pages/roof-repair/austin-tx"


@asynccontextmanager
async def connected() -> AsyncIterator[tuple[CoalescingTransport, socket.socket]]:
    """A coalescing transport over a real socket, and the (non-blocking) peer socket."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    try:
        yield CoalescingTransport(transport, loop), theirs
    finally:
        transport.close()
        theirs.close()


async def received(peer: socket.socket) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(peer, 65536), 5)


async def test_writes_of_one_callback_are_sent_together_when_it_ends() -> None:
    async with connected() as (transport, peer):
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
        transport.write(b"body")
        with pytest.raises(BlockingIOError):  # held until the loop moves on
            peer.recv(65536)
        await asyncio.sleep(0)  # the loop moving on is the behaviour here, not a wait
        assert await received(peer) == b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody"
        transport.write(b"next")  # a later iteration's write is not lost either
        assert await received(peer) == b"next"


async def test_closing_sends_what_is_held_first() -> None:
    async with connected() as (transport, peer):
        transport.write(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
        transport.close()
        assert await received(peer) == b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n"
        assert await received(peer) == b""  # then the end of the stream
        assert transport.is_closing()


async def test_lines_written_at_once_queue_behind_what_is_held() -> None:
    async with connected() as (transport, peer):
        transport.write(b"head ")
        transport.writelines([b"body ", b"end"])
        await asyncio.sleep(0)  # one turn of the loop: the held writes leave at its end
        assert await received(peer) == b"head body end"


async def test_empty_writes_schedule_nothing() -> None:
    async with connected() as (transport, peer):
        transport.write(b"")
        await asyncio.sleep(0)  # one turn of the loop, in which nothing may be sent
        with pytest.raises(BlockingIOError):
            peer.recv(65536)


def read_response(stream: socket.socket, buffer: bytearray, method: str) -> tuple[bytes, bytes]:
    """One response (head, body) from a keep-alive connection; the rest stays in buffer."""
    while b"\r\n\r\n" not in buffer:
        chunk = stream.recv(65536)
        assert chunk, "connection closed mid-response"
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    lines = head.lower().split(b"\r\n")
    lengths = [line.split(b":")[1] for line in lines if line.startswith(b"content-length:")]
    bodyless = method == "HEAD" or b" 304 " in lines[0]
    length = int(lengths[0]) if lengths and not bodyless else 0
    while len(buffer) < end + length:
        chunk = stream.recv(65536)
        assert chunk, "connection closed mid-body"
        buffer += chunk
    body = bytes(buffer[end : end + length])
    del buffer[: end + length]
    return head, body


def test_pipelined_responses_arrive_whole_and_in_order_through_the_real_server(
    site_dsn: str,
) -> None:
    """A document, its 304, a HEAD, a 404 and an HTML page on one connection, sent at once."""
    with live_server(make_settings(site_dsn)) as url:
        document = httpx.get(f"{url}{DOCUMENT}")
        assert document.status_code == 200
        etag = document.headers["etag"]
        requests = [
            f"GET {DOCUMENT} HTTP/1.1\r\nHost: t\r\n\r\n",
            f"GET {DOCUMENT} HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n",
            f"HEAD {DOCUMENT} HTTP/1.1\r\nHost: t\r\n\r\n",
            "GET /api/v1/pages/no-such/page HTTP/1.1\r\nHost: t\r\n\r\n",
            "GET /roof-repair/austin-tx HTTP/1.1\r\nHost: t\r\n\r\n",
        ]
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port), timeout=10) as stream:
            stream.sendall("".join(requests).encode())
            buffer = bytearray()
            answers = [read_response(stream, buffer, r.split()[0]) for r in requests]
    statuses = [head.split(b" ", 2)[1] for head, _ in answers]
    assert statuses == [b"200", b"304", b"200", b"404", b"200"]
    assert answers[0][1] == document.content
    assert answers[1][1] == answers[2][1] == b""
    assert answers[4][1].startswith(b"<!doctype html>")
    assert buffer == b""


async def streamed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering with its path, the body in two parts a loop iteration apart."""
    part = scope["path"].encode() * 3
    headers = [(b"content-length", str(2 * len(part)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": part, "more_body": True})
    await asyncio.sleep(0)  # the second part in a later loop iteration is the point
    await send({"type": "http.response.body", "body": part})


async def exchange(protocol_class: type[HttpToolsProtocol], requests: bytes) -> tuple[bytes, Any]:
    """What a client receives from `protocol_class` serving `streamed` on one connection
    until the server closes it, and the transport the protocol wrote through."""
    loop = asyncio.get_running_loop()
    config = uvicorn.Config(streamed, lifespan="off", log_config=None)
    config.load()
    protocol = protocol_class(config, ServerState(), {}, loop)
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport, _ = await loop.connect_accepted_socket(lambda: protocol, ours)
    try:
        await loop.sock_sendall(theirs, requests)
        answer = bytearray()
        while chunk := await asyncio.wait_for(loop.sock_recv(theirs, 65536), 5):
            answer += chunk
        return bytes(answer), protocol.transport
    finally:
        transport.close()
        theirs.close()


async def test_responses_are_byte_for_byte_what_uvicorns_own_protocol_sends() -> None:
    """Fails if uvicorn moves what the subclass relies on: its protocol must write through
    our transport (`connection_made`), and every write must leave in order."""
    requests = b"".join(
        f"GET /{name} HTTP/1.1\r\nHost: t\r\n{close}\r\n".encode()
        for name, close in (("a", ""), ("bb", ""), ("ccc", "Connection: close\r\n"))
    )
    ours, transport = await exchange(CoalescingHttpToolsProtocol, requests)
    theirs, _ = await exchange(HttpToolsProtocol, requests)
    assert isinstance(transport, CoalescingTransport)
    assert ours == theirs and ours.count(b"HTTP/1.1 200 OK") == 3 and ours.endswith(b"/ccc" * 6)


def test_uvicorn_is_pinned_below_its_next_minor() -> None:
    assert pinned_below_next_minor("uvicorn")
