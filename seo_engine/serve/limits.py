"""The request limits (uvicorn's httptools parser sets none) and `Server-Timing`, applied by
the first middleware inside FastAPI and by the hot path in front of it, through the same
two functions."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seo_engine.serve import problems

MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100


def url_bytes(scope: Scope) -> int:
    return len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))


def refusal(url_size: int, header_bytes: int, header_count: int) -> tuple[int, str] | None:
    """414 for an over-long URL, 431 for too many or too large headers; None when fine."""
    if url_size > MAX_URL_BYTES:
        return 414, f"the URL is longer than {MAX_URL_BYTES} bytes"
    if header_bytes > MAX_HEADER_BYTES or header_count > MAX_HEADERS:
        return 431, f"the headers exceed {MAX_HEADERS} fields or {MAX_HEADER_BYTES} bytes"
    return None


def server_timing(started: float) -> tuple[bytes, bytes]:
    """`Server-Timing: app;dur=<ms>`: time inside the app, so that queueing in front of it
    (load balancer, accept backlog) can be told apart from time spent in it."""
    return (b"server-timing", b"app;dur=%.1f" % ((time.perf_counter() - started) * 1000))


class RequestLimits:
    """ASGI middleware: refuse oversized requests before any work is done, and time every
    response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        header_bytes = sum(len(name) + len(value) for name, value in headers)
        refused = refusal(url_bytes(scope), header_bytes, len(headers))
        if refused is not None:
            await problems.problem(*refused)(scope, receive, send)
            return
        await self.app(scope, receive, timed(send, time.perf_counter()))


def timed(send: Send, started: float) -> Send:
    """`send`, adding Server-Timing to the response it starts."""

    async def timed_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), server_timing(started)]}
        await send(message)

    return timed_send
