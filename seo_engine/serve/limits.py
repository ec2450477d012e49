"""The first middleware inside FastAPI: refuse oversized requests before any work is done
(uvicorn's httptools parser sets no limit), and time every response (`Server-Timing`).
The hot paths in front of FastAPI apply the same limits and timing themselves."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seo_engine.serve import problems

MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100


class RequestLimits:
    """ASGI middleware: 414 for an over-long URL, 431 for too many or too large headers;
    `Server-Timing: app;dur=<ms>` on every response, so queueing in front of the app (load
    balancer, accept backlog) can be told apart from time spent inside it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            url_bytes = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
            headers = scope["headers"]
            header_bytes = sum(len(name) + len(value) for name, value in headers)
            if url_bytes > MAX_URL_BYTES:
                detail = f"the URL is longer than {MAX_URL_BYTES} bytes"
                await problems.problem(414, detail)(scope, receive, send)
                return
            if header_bytes > MAX_HEADER_BYTES or len(headers) > MAX_HEADERS:
                detail = f"the headers exceed {MAX_HEADERS} fields or {MAX_HEADER_BYTES} bytes"
                await problems.problem(431, detail)(scope, receive, send)
                return
            started = time.perf_counter()

            async def timed_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    spent = (time.perf_counter() - started) * 1000
                    headers = [
                        *message.get("headers", []),
                        (b"server-timing", b"app;dur=%.1f" % spent),
                    ]
                    message = {**message, "headers": headers}
                await send(message)

            await self.app(scope, receive, timed_send)
            return
        await self.app(scope, receive, send)
